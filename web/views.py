"""Views: thin wrappers that read the loaded state and the app's tables and render templates.

Suggestions come from `reports.suggestions.meeting_outputs` (through `web.state`); the chart from
`reports.meeting.contribution_svg`; decisions go through `web.decisions.record_decision`.
"""

from __future__ import annotations

import datetime as dt
import io
from collections import Counter
from pathlib import Path

import pandas as pd
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required, permission_required
from django.db import connection
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from features.load import region_of
from web.decisions import DecisionError, home_view, record_decision
from web.export import decision_rows
from web.models import REASONS, CurrentDecision, DatasetSwitch, DecisionRecord, Meeting, Note, profile_of, split_key
from web.state import get_state

PRINT_TOP = 3


def _index(m: Meeting, lang: str):
    """The meeting's suggestions and pages in one language; 404 when the dataset in use lacks the meeting."""
    from features.errors import UserError

    try:
        return get_state().index(pd.Timestamp(m.date), lang, m.region)
    except UserError as exc:
        raise Http404(f"meeting {m.key} is not in the dataset in use: {exc}") from None


def _meeting(key: str) -> Meeting:
    """The meeting a URL names: its date, and `~region` for a regional meeting (Meeting.key)."""
    date, region = split_key(key)
    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        raise Http404("not a meeting date") from None
    found = _raw(Meeting, "date = %s AND region = %s", [connection.ops.adapt_datefield_value(day), region])
    if not found:
        raise Http404("no such meeting")
    return found[0]


def _raw(model, where: str, params: list, order: str = "") -> list:
    """Rows of `model` by a plain SQL condition: a home page's lookups, where the ORM's compilation cost more
    than the queries."""
    order_by = f" ORDER BY {order}" if order else ""
    return list(model.objects.raw(f"SELECT * FROM {model._meta.db_table} WHERE {where}{order_by}", params))


@login_not_required
def static_file(request: HttpRequest, path: str) -> HttpResponse:
    """The vendored htmx and the stylesheet (no build step, no CDN)."""
    from django.views.static import serve

    from web.settings import STATIC_ROOT

    response = serve(request, path, document_root=STATIC_ROOT)
    response["Cache-Control"] = "public, max-age=86400"
    return response


def home(request: HttpRequest) -> HttpResponse:
    """The start page: the meetings for those who see the agenda, else links for the user's role."""
    if request.user.has_perm("web.view_agenda"):
        return redirect("meetings")
    return render(request, "web/start.html")


@permission_required("web.view_agenda", raise_exception=True)
def meetings(request: HttpRequest) -> HttpResponse:
    """The list of meetings with progress (decided / homes)."""
    rows = []
    state = get_state()
    vac = state.ds.vacancies
    homes_per_meeting = vac.groupby([vac["meeting_date"], region_of(vac).to_numpy()]).size()
    for m in Meeting.objects.annotate(n_decided=Count("current")):
        n_homes = int(homes_per_meeting.get((pd.Timestamp(m.date), m.region), 0))
        decided = m.n_decided
        rows.append({"meeting": m, "homes": n_homes, "decided": decided, "open": n_homes - decided})
    regional = any(r["meeting"].region for r in rows)
    return render(request, "web/meetings.html", {"rows": rows, "regional": regional})


@permission_required("web.view_agenda", raise_exception=True)
def meeting(request: HttpRequest, key: str) -> HttpResponse:
    """One meeting: every home with the plan's proposal and whether it is decided."""
    m = _meeting(key)
    index = _index(m, profile_of(request.user).lang)
    current = {c.dwelling_id: c for c in m.current.select_related("record")}
    homes = [
        {
            "dwelling_id": did,
            "line": page.line,
            "proposed": page.proposed_client_id,
            "proposed_p": None if page.proposal is None else float(page.proposal["p_sustained"]),
            "n_eligible": page.n_eligible,
            "current": current.get(did),
        }
        for did, page in index.pages.items()
    ]
    decided = sum(1 for h in homes if h["current"])
    return render(
        request,
        "web/meeting.html",
        {"m": m, "homes": homes, "decided": decided, "open": len(homes) - decided, "warnings": index.outputs.warnings},
    )


@permission_required("web.view_agenda", raise_exception=True)
def home_detail(request: HttpRequest, key: str, dwelling_id: str) -> HttpResponse:
    """One home: the plan's proposal first with why, the ranked candidates, the excluded ones, notes, decision.

    Everything but the decision, its history and the notes was built when the meeting was loaded
    (web.pages): a request reads it and runs a few small queries.
    """
    m = _meeting(key)
    profile = profile_of(request.user)
    page = _index(m, profile.lang).pages.get(dwelling_id)
    if page is None:
        raise Http404("this home is not on this meeting's table")
    show_all = bool(request.GET.get("all"))
    history = _raw(DecisionRecord, "meeting_id = %s AND dwelling_id = %s", [m.pk, dwelling_id], "decided_at, id")
    # The decision in force is the newest record: each record supersedes the one before, and the record and
    # CurrentDecision are written in one transaction (web.decisions), so no second query is needed.
    current = {"record": history[-1], "client_id": history[-1].client_id} if history else None
    own = {c for c, provider in page.providers.items() if profile.care_provider and provider == profile.care_provider}
    return render(
        request,
        "web/home.html",
        {
            "m": m,
            "dwelling_id": dwelling_id,
            "line": page.line,
            "nbh_line": page.nbh_line,
            "proposal": page.proposal,
            "proposal_html": page.proposal_html,
            "candidates_html": page.candidates_block(own, show_all),
            "choices": page.choices,
            "n_excluded": page.n_excluded,
            "excluded_options": page.excluded_options,
            "current": current,
            "history": history,
            "notes": _raw(Note, "meeting_id = %s AND dwelling_id = %s", [m.pk, dwelling_id], "created_at, id"),
            "reasons": REASONS,
            "own_clients": own,
            "can_decide": request.user.has_perm("web.decide"),
            "can_note": request.user.has_perm("web.add_meeting_note"),
        },
    )


@require_POST
@permission_required("web.decide", raise_exception=True)
def decide(request: HttpRequest, key: str, dwelling_id: str) -> HttpResponse:
    """Record the chair's decision for one home (refused with a message when invalid or stale)."""
    m = _meeting(key)
    state = get_state()
    try:
        view = home_view(state, m, dwelling_id, profile_of(request.user).lang)
    except DecisionError:
        raise Http404("this home is not on this meeting's table") from None
    decision = request.POST.get("decision", "")
    client = request.POST.get("client_id", "")
    if decision == "rule_exception":
        client = request.POST.get("exception_client_id", "")
    try:
        rec = record_decision(
            state,
            m,
            view,
            decision=decision,
            client_id=client,
            reason=request.POST.get("reason", ""),
            note=request.POST.get("note", ""),
            seen_record=request.POST.get("seen_record", ""),
            decided_by=profile_of(request.user).pseudonym,
        )
    except DecisionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            _("Recorded for %(home)s: %(decision)s.") % {"home": dwelling_id, "decision": rec.get_decision_display()},
        )
    return redirect("home_detail", key=key, dwelling_id=dwelling_id)


@require_POST
@permission_required("web.add_meeting_note", raise_exception=True)
def add_note(request: HttpRequest, key: str, dwelling_id: str) -> HttpResponse:
    """Add a note to a home (htmx: returns the notes list; otherwise back to the home)."""
    m = _meeting(key)
    text = request.POST.get("text", "").strip()
    if text:
        Note.objects.create(
            meeting=m, dwelling_id=dwelling_id, author=profile_of(request.user).pseudonym, text=text[:2000]
        )
    if request.headers.get("HX-Request"):
        return render(request, "web/_notes.html", {"notes": Note.objects.filter(meeting=m, dwelling_id=dwelling_id)})
    return redirect("home_detail", key=key, dwelling_id=dwelling_id)


@require_POST
@permission_required("web.decide", raise_exception=True)
def set_closed(request: HttpRequest, key: str) -> HttpResponse:
    """The chair opens or closes a meeting (a closed meeting takes no decisions)."""
    m = _meeting(key)
    m.closed = request.POST.get("closed") == "1"
    m.save(update_fields=["closed"])
    return redirect("meeting", key=key)


@permission_required("web.view_agenda", raise_exception=True)
def print_view(request: HttpRequest, key: str) -> HttpResponse:
    """A compact printable meeting: the plan and the top 3 per home, about 3 homes per A4 page."""
    m = _meeting(key)
    index = _index(m, profile_of(request.user).lang)
    homes = [
        {
            "dwelling_id": did,
            "line": page.line,
            "proposed": page.proposed_client_id,
            "top": page.all_rows[:PRINT_TOP],
        }
        for did, page in index.pages.items()
    ]
    return render(request, "web/print.html", {"m": m, "homes": homes, "model": m.model_version})


@permission_required("web.view_client_profile", raise_exception=True)
def client_profile(request: HttpRequest, client_id: str) -> HttpResponse:
    """The full ZRM profile of a client, only for staff of the client's own care provider."""
    clients = get_state().ds.clients
    row = clients[clients["client_id"] == client_id]
    if row.empty:
        raise Http404("no such client")
    rec = row.iloc[0].to_dict()
    provider = profile_of(request.user).care_provider
    if not provider or rec["care_provider"] != provider:
        return HttpResponseForbidden(_("Only staff of this client's own care provider see the full profile."))
    return render(request, "web/client.html", {"client": rec})


@permission_required("web.view_decision_log", raise_exception=True)
def decision_log(request: HttpRequest) -> HttpResponse:
    """The decision log (all records, oldest first); `?overrides=1` shows only departures from the plan."""
    records = DecisionRecord.objects.select_related("meeting").all()
    if request.GET.get("overrides"):
        records = records.exclude(decision="plan_followed")
    by_reason = Counter(r.reason for r in DecisionRecord.objects.exclude(decision="plan_followed"))
    return render(request, "web/log.html", {"records": records, "by_reason": sorted(by_reason.items())})


@permission_required("web.view_decision_log", raise_exception=True)
def export_log(request: HttpRequest, fmt: str) -> HttpResponse:
    """The decision log as the contract's decisions table, CSV or Parquet."""
    frame = decision_rows(DecisionRecord.objects.select_related("meeting").all())
    if fmt == "csv":
        response = HttpResponse(frame.to_csv(index=False), content_type="text/csv; charset=utf-8")
    elif fmt == "parquet":
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        response = HttpResponse(buf.getvalue(), content_type="application/vnd.apache.parquet")
    else:
        raise Http404("unknown format")
    response["Content-Disposition"] = f'attachment; filename="decisions.{fmt}"'
    return response


@permission_required("web.view_model_info", raise_exception=True)
def model_info(request: HttpRequest) -> HttpResponse:
    """Model version and metadata, the dataset's fingerprint and summary, and the meetings loaded."""
    state = get_state()
    meta = {k: v for k, v in (state.bundle.metadata or {}).items() if not isinstance(v, dict | list)}
    return render(
        request,
        "web/model.html",
        {
            "model_version": state.model_version,
            "objective": state.bundle.objective,
            "features": state.bundle.feature_names,
            "meta": sorted(meta.items()),
            "summary": state.ds.summary(),
            "fingerprint": state.fingerprint,
            "meetings": Meeting.objects.all(),
        },
    )


@permission_required("web.view_audit", raise_exception=True)
def audit(request: HttpRequest) -> HttpResponse:
    """How often and why the meeting departed from the plan; the audit report for those who may see group figures."""
    total = DecisionRecord.objects.count()
    current = CurrentDecision.objects.select_related("record")
    by_decision = Counter(c.record.decision for c in current)
    by_reason = Counter(c.record.reason for c in current if c.record.reason)
    return render(
        request,
        "web/audit.html",
        {
            "total": total,
            "by_decision": sorted(by_decision.items()),
            "by_reason": sorted(by_reason.items()),
            "group_figures": request.user.has_perm("web.view_group_figures"),
        },
    )


@permission_required("web.view_group_figures", raise_exception=True)
def audit_report(request: HttpRequest) -> HttpResponse:
    """The fairness audit report (protected-attribute group figures): auditors only."""
    from django.conf import settings

    path = settings.HOME.parent / "out" / "audit" / "audit.html"
    path = getattr(settings, "MATCHWIJS_AUDIT_HTML", None) or path
    try:
        return HttpResponse(open(path, encoding="utf-8").read())
    except OSError:
        raise Http404("no audit report yet: run `make demo` or `matchwijs audit`") from None


@require_POST
def set_lang(request: HttpRequest) -> HttpResponse:
    """Switch the language of reasons (nl/en) for this user."""
    profile = profile_of(request.user)
    lang = request.POST.get("lang", "en")
    if lang in ("en", "nl"):
        profile.lang = lang
        profile.save(update_fields=["lang"])
    back = request.POST.get("next", "/")
    return redirect(back if back.startswith("/") and not back.startswith("//") else "/")


@permission_required("web.switch_dataset", raise_exception=True)
def dataset(request: HttpRequest) -> HttpResponse:
    """The dataset in use; analysts and admins switch to another folder on the server or upload a zip of one.

    The new dataset is validated like `matchwijs validate` (the same named problems) and its latest
    meeting computed before anything changes; when refused, the previous data stay in use.
    """
    from web.datasets import SwitchRefused, discard_upload, switch_to, unpack_upload

    state = get_state()
    refused: SwitchRefused | None = None
    if request.method == "POST":
        upload = request.FILES.get("upload")
        raw_path = request.POST.get("path", "").strip()
        unpacked = None
        try:
            if upload is not None:
                unpacked = unpack_upload(upload)
                target = unpacked
            elif raw_path:
                target = Path(raw_path)
            else:
                raise SwitchRefused(_("Give a dataset folder on the server or upload a zip of one."))
            _new, meeting_row = switch_to(target, state, by=profile_of(request.user).pseudonym)
        except SwitchRefused as exc:
            refused = exc
            if unpacked is not None:
                discard_upload(unpacked)
        else:
            messages.success(
                request,
                _("Now serving %(path)s; meeting %(date)s loaded.")
                % {"path": target, "date": f"{meeting_row.date:%Y-%m-%d}"},
            )
            return redirect("dataset")
    return render(
        request,
        "web/dataset.html",
        {
            "path": state.ds.path,
            "fingerprint": state.fingerprint,
            "summary": state.ds.summary(),
            "switches": DatasetSwitch.objects.all()[:20],
            "refused": refused,
        },
        status=400 if refused else 200,
    )
