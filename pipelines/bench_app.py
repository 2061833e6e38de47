"""`make bench` (app part): the meeting app under load on loopback, the time to load a big meeting, server memory.

A random 50-home × 400-candidate meeting after 20 weeks of history and a stand-in model are written to
bench/app/; `matchwijs serve` (2 gunicorn workers) runs on a free loopback port; 20 simulated users log in
as the demo chair (before the clock starts) and then each opens 15 random home pages at the same time
(a bounded run: 300 requests, then it stops). Wall times depend on the machine's other load, so the
1-minute load average is reported next to them, with CPU seconds (the load and the server's CPU per page).
Results go to bench/app.json and stdout.
"""

from __future__ import annotations

import json
import os
import platform
import random
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench"
USERS, PAGES_EACH, START_TIMEOUT_S = 20, 15, 300
MODEL_TREES, MODEL_LEAVES = 100, 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used (/proc/PID/stat fields 14 and 15)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _prepare(folder: Path) -> tuple[Path, Path, dict[str, float]]:
    from features import formatting
    from features.config import load_params
    from features.load import load_dataset
    from reports.suggestions import RecommendConfig
    from synthetic.meeting import synthetic_meeting_tables, write_tables
    from synthetic.stand_in import history_bundle
    from web.state import AppState, model_version

    tables, _, as_of = synthetic_meeting_tables(
        n_vacancies=50, n_candidates=400, history_weeks=20, weekly_history=10, seed=0
    )
    data = write_tables(folder / "data", tables, as_of=as_of)
    cfg = RecommendConfig.from_params(load_params())
    ds = load_dataset(data)
    # The project's default model size (params.yaml train.lgbm: 100 rounds of 2-leaf trees).
    bundle = history_bundle(ds, cfg, n_trees=MODEL_TREES, num_leaves=MODEL_LEAVES)
    bundle.save(folder / "model")
    formatting.warm()  # as the server does at start (web.state.warm): Babel's locale data, loaded once per process
    state = AppState(ds, bundle, cfg, "bench", model_version(bundle))
    latest = state.latest()
    seconds = {}
    for lang in ("en", "nl"):  # suggestions, explanations, plan and every home's page content
        t0, c0 = time.perf_counter(), time.process_time()
        state.index(latest, lang)
        seconds[lang] = time.perf_counter() - t0
        seconds[f"{lang}_cpu"] = time.process_time() - c0  # CPU time: less sensitive to other jobs' load
    return data, folder / "model", seconds


def _login(base: str, password: str, sessions: list) -> None:
    import requests

    s = requests.Session()
    page = s.get(f"{base}/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    s.post(f"{base}/login/", data={"username": "demo-chair", "password": password, "csrfmiddlewaretoken": token})
    sessions.append(s)


def _user(logged_in, base: str, homes: list[str], date: str, seed: int, times: list[float], errors: list[str]):
    import requests

    s = requests.Session()  # new connections: the server closed the login's idle keep-alive connection
    s.cookies.update(logged_in.cookies)
    rng = random.Random(seed)
    for _ in range(PAGES_EACH):
        t0 = time.perf_counter()
        try:
            r = s.get(f"{base}/meetings/{date}/homes/{rng.choice(homes)}/")
        except requests.RequestException as exc:  # counted, not fatal: the other requests still measure
            errors.append(type(exc).__name__)
            continue
        times.append(time.perf_counter() - t0)
        if r.status_code != 200:
            errors.append(str(r.status_code))


def main() -> None:
    folder = OUT / "app"
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MATCHWIJS_HOME", str(folder / "var-prepare"))
    from pipelines.serve import setup_django

    setup_django()  # the pages are built with the app's translations
    load_before = os.getloadavg()
    data, model, load_s = _prepare(folder)
    port = _free_port()
    env = {**os.environ, "MATCHWIJS_HOME": str(folder / f"var-{port}")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "matchwijs"), "serve", "--data", str(data), "--model", str(model)]
        + ["--port", str(port), "--demo-accounts"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        password, date = "", ""
        deadline = time.monotonic() + START_TIMEOUT_S
        assert server.stdout is not None
        for line in server.stdout:
            if m := re.match(r"meeting (\d{4}-\d\d-\d\d) loaded", line):
                date = m.group(1)
            if m := re.search(r"user demo-chair\s+password (\S+)", line):
                password = m.group(1)
            if line.startswith("serving") or time.monotonic() > deadline:
                break
        threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()  # keep the pipe drained
        base = f"http://127.0.0.1:{port}"
        for _ in range(60):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(1)
        homes = sorted(set(re.findall(r"W\d{5}", (data / "vacancies.csv").read_text())[-50:]))
        # Log the users in first: a login's password hash (PBKDF2) costs more CPU than many pages, and is not
        # what the goal measures.
        sessions: list = []
        logins = [threading.Thread(target=_login, args=(base, password, sessions)) for _ in range(USERS)]
        for t in logins:
            t.start()
        for t in logins:
            t.join(timeout=600)
        times: list[float] = []
        errors: list[str] = []
        workers = [int(p) for p in Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()]
        cpu0 = _cpu_s(workers)
        t0 = time.perf_counter()
        users = [
            threading.Thread(target=_user, args=(s, base, homes, date, i, times, errors))
            for i, s in enumerate(sessions)
        ]
        for u in users:
            u.start()
        for u in users:
            u.join(timeout=600)
        wall = time.perf_counter() - t0
        cpu_per_request = (_cpu_s(workers) - cpu0) / max(len(times), 1)
        children = [int(p) for p in Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()]
        rss = {"master": _rss_mb(server.pid), "workers": [_rss_mb(p) for p in children]}
    finally:
        server.terminate()  # gunicorn waits up to its graceful timeout (30 s) for open keep-alive connections
        try:
            server.wait(timeout=40)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    times.sort()
    q = lambda f: times[min(int(f * len(times)), len(times) - 1)] if times else float("nan")  # noqa: E731
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "meeting": f"50 homes x 400 candidates, stand-in model ({MODEL_TREES} trees of {MODEL_LEAVES} leaves)",
        "load_meeting_s": round(load_s["en"], 2),
        "load_meeting_second_language_s": round(load_s["nl"], 2),
        "load_meeting_cpu_s": round(load_s["en_cpu"], 2),
        "load_meeting_second_language_cpu_s": round(load_s["nl_cpu"], 2),
        "load_average_1m_before_and_after": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
        "users": USERS,
        "requests": len(times),
        "errors": len(errors),
        "home_page_p50_s": round(q(0.50), 3),
        "home_page_p95_s": round(q(0.95), 3),
        "requests_per_s": round(len(times) / wall, 1),
        "server_cpu_ms_per_request": round(1000 * cpu_per_request, 1),
        "server_rss_mb": {"master": round(rss["master"]), "workers": [round(w) for w in rss["workers"]]},
    }
    (OUT / "app.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print("meeting app:", json.dumps(result))


if __name__ == "__main__":
    main()
