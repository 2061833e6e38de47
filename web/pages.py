"""Per-home page content, built once when a meeting is loaded (per language) and then only read by requests.

A home page request does no pandas or model work: the ranked candidates, the plan's proposal and why,
the contribution charts, the candidate and excluded lists (as escaped HTML fragments) are all here.
Only what changes during the meeting (the decision, its history, notes) is read from the database.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape

import numpy as np
import pandas as pd
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from features.load import Dataset
from reports.meeting import TEXT, _home_lines, contribution_svg
from reports.reasons import feature_label
from reports.suggestions import MeetingOutputs

CHART_FEATURES = 8
CHART_CANDIDATES = 5
PAGE_CANDIDATES = 20  # rows shown before "show all"
OPTIONAL_REC_COLUMNS = ("waiting_weeks", "in_pool", "chance_low", "chance_high")


@dataclass(frozen=True)
class HomePage:
    """Everything a home page shows that does not change during the meeting."""

    dwelling_id: str
    lang: str
    line: str
    nbh_line: str
    ranked: pd.DataFrame  # recommendations of this home, by rank (decisions validate against it)
    excluded: pd.DataFrame  # excluded candidates of this home
    proposed_client_id: str
    proposal: dict | None
    why: list[str]
    top: list[dict]  # the first PAGE_CANDIDATES (and the proposal), charts for the first CHART_CANDIDATES
    extra_cols: list[str]
    extra_headers: list[str]
    choices: SafeString
    excluded_rows: SafeString
    excluded_options: SafeString
    providers: dict[str, str]  # candidate -> care provider (members see the profile of their own clients)
    tolerance: float
    top_cells: list[tuple[str, str, str]] = field(default_factory=list)  # (client, before, after) per top row
    make_rows: Callable[[], list[dict]] = list  # every eligible candidate's row (built on first "show all")
    _all: list[list[dict]] = field(default_factory=list, repr=False)
    # The page's two big parts as HTML, rendered once at load: what every request of the default view sends.
    proposal_html: SafeString = field(default_factory=lambda: mark_safe(""))
    candidates_html: SafeString = field(default_factory=lambda: mark_safe(""))

    def candidates_block(self, own_clients: set[str], show_all: bool = False) -> SafeString:
        """The ranked candidates and the excluded ones as HTML: prebuilt, unless the view links own clients or shows all."""
        if not show_all and not own_clients and self.candidates_html:
            return self.candidates_html
        with translation.override(self.lang):
            return self._render_candidates(own_clients, show_all)

    def _render_candidates(self, own_clients: set[str], show_all: bool) -> SafeString:
        candidates = self.all_rows if show_all else self.top
        return mark_safe(
            render_to_string(
                "web/_candidates.html",
                {
                    "candidates": candidates,
                    "n_eligible": self.n_eligible,
                    "show_all": show_all,
                    "tolerance": self.tolerance,
                    "any_close": any(c["no_real_difference"] for c in candidates),
                    "extra_headers": self.extra_headers,
                    "table_rows": self.table_rows(own_clients, show_all),
                    "n_excluded": self.n_excluded,
                    "excluded_rows": self.excluded_rows,
                },
            )
        )

    def prebuilt(self) -> HomePage:
        """This page with its default view's HTML rendered (call with the page's language active)."""
        proposal = render_to_string("web/_proposal.html", {"proposal": self.proposal, "why": self.why})
        return dataclasses.replace(
            self, proposal_html=mark_safe(proposal), candidates_html=self._render_candidates(set(), False)
        )

    @property
    def all_rows(self) -> list[dict]:
        """Every eligible candidate by rank (the top rows with their charts, the rest without), built once."""
        if not self._all:
            rows = self.make_rows()
            by_client = {c["client_id"]: c for c in self.top}
            self._all.append([by_client.get(r["client_id"], r) for r in rows])
        return self._all[0]

    def table_rows(self, own_clients: set[str], show_all: bool = False) -> SafeString:
        """The candidate table's rows as HTML; the client cell links to the profile for `own_clients`."""
        if show_all:
            with translation.override(self.lang):
                cells = [(c["client_id"], *row_cells(c, self.extra_cols)) for c in self.all_rows]
        else:
            cells = self.top_cells
        parts = []
        for cid, head, tail in cells:
            safe = escape(cid)
            client = f'<a href="{escape(reverse("client", args=[cid]))}">{safe}</a>' if cid in own_clients else safe
            parts.append(head + client + tail)
        return mark_safe("".join(parts))

    @property
    def n_eligible(self) -> int:
        return len(self.ranked)

    @property
    def n_excluded(self) -> int:
        return len(self.excluded)


def _extra_values(extra: list[str], rows: pd.DataFrame) -> list[dict]:
    """The shown values of the optional columns per row: whole weeks, yes/no for pool membership."""
    yes_no = {True: _("yes"), False: _("no")}
    shown: dict[str, list] = {}
    for column in extra:
        values = rows[column].tolist()
        if column == "in_pool":
            shown[column] = [yes_no[bool(v)] for v in values]
        elif column == "waiting_weeks":
            shown[column] = ["" if pd.isna(v) else f"{float(v):.0f}" for v in values]
        else:
            shown[column] = values
    return [{c: shown[c][i] for c in extra} for i in range(len(rows))]


def _escaped(values) -> list[str]:
    """Each value as escaped text; each distinct value is escaped once (ids and rules repeat across homes)."""
    values = list(values)
    table = {v: escape(str(v)) for v in dict.fromkeys(values)}
    return [table[v] for v in values]


def _html_rows(template: str, *columns) -> np.ndarray:
    """One HTML fragment per row (an object array, to be cut per home): escaped values put into `template`.

    Built once for the whole meeting: Django's format_html per row is several times slower.
    """
    escaped = [_escaped(c) for c in columns]
    rows = np.empty(len(escaped[0]) if escaped else 0, dtype=object)
    rows[:] = [template.format(*values) for values in zip(*escaped, strict=True)]
    return rows


def _joined(rows: np.ndarray, positions) -> SafeString:
    return mark_safe("".join(rows[np.asarray(positions, dtype=int)].tolist()))


def _extra_header(column: str) -> str:
    return {"waiting_weeks": _("Waiting (weeks)"), "in_pool": _("In the policy's pool")}.get(column, column)


def _num(value, decimals: int = 2) -> str:
    """Like Django's floatformat for the chance columns: fixed decimals, empty for a missing value."""
    return "" if value is None or pd.isna(value) else f"{float(value):.{decimals}f}"


def row_cells(c: dict, extra: list[str]) -> tuple[str, str]:
    """One candidate's table row as HTML, split around the client cell (a member's own clients get a link).

    Built in Python once per row at load: Django's template loop over 20 rows with charts cost most of a
    request's time.
    """
    chance = _num(c["p_sustained"])
    if c.get("chance_low") is not None and c.get("chance_high") is not None and not pd.isna(c["chance_low"]):
        chance += f" ({_num(c['chance_low'])}–{_num(c['chance_high'])})"
    if c["no_real_difference"]:
        label = escape(_("no real difference"))
        chance += f' <span class="close" title="{label}">≈ {label}</span>'
    support = escape(str(c["support"])) + (f" ({escape(_('low'))})" if c["low_support"] else "")
    extras = "".join(f"<td>{escape(str(c['extra'][k]))}</td>" for k in extra if k not in ("chance_low", "chance_high"))
    chart = f"<details><summary>{escape(_('chart'))}</summary>{c['chart']}</details>" if c["chart"] else ""
    if c["proposed"]:
        plan = escape(_("proposed here"))
    elif c["elsewhere"]:
        plan = escape(_("planned for %(home)s") % {"home": c["elsewhere"]})
    else:
        plan = ""
    bold = ' style="font-weight:bold"' if c["proposed"] else ""
    head = f"<tr{bold}><td>{escape(str(c['rank']))}</td><td>"
    tail = f"</td><td>{chance}</td><td>{support}</td>{extras}<td>{escape(str(c['reasons']))}{chart}</td><td>{plan}</td></tr>"
    return head, tail


class _Contributions:
    """Each recommendation's contributions as one matrix row (explanations are k rows per pair, in order)."""

    def __init__(self, out: MeetingOutputs) -> None:
        if out.contributions is not None and len(out.contributions) == len(out.recommendations):
            self.features: list[str] = [str(c) for c in out.contributions.columns]  # wide, in recommendation order
            self.matrix = out.contributions.to_numpy(dtype=float)
            return
        recs, ex = out.recommendations, out.explanations
        n = len(recs)
        k = len(ex) // n if n else 0
        self.features = list(ex["feature"].iloc[:k]) if k else []
        ordered = (
            n > 0
            and k * n == len(ex)
            and np.array_equal(ex["dwelling_id"].to_numpy()[::k], recs["dwelling_id"].to_numpy())
            and np.array_equal(ex["client_id"].to_numpy()[::k], recs["client_id"].to_numpy())
        )
        if ordered:
            self.matrix = ex["contribution"].to_numpy(dtype=float).reshape(n, k)
        else:  # not in recommendation order: pivot (slower, still once per load)
            wide = ex.pivot_table(
                index=["dwelling_id", "client_id"], columns="feature", values="contribution", sort=False
            )
            self.features = list(wide.columns)
            keys = pd.MultiIndex.from_frame(recs[["dwelling_id", "client_id"]])
            self.matrix = wide.reindex(keys).fillna(0.0).to_numpy(dtype=float)

    def chart(self, row: int, lang: str) -> SafeString:
        """The contribution chart of one recommendation row (largest |contribution| first)."""
        values = self.matrix[row]
        order = np.argsort(-np.abs(values), kind="stable")[:CHART_FEATURES]
        items = [(feature_label(self.features[j], lang), float(values[j])) for j in order]
        scale = max((abs(v) for _label, v in items), default=1.0)
        return mark_safe(contribution_svg(items, scale=scale, lang=lang))


def homes_frame(ds: Dataset, meeting_date: pd.Timestamp) -> pd.DataFrame:
    """The homes on a meeting's table with their neighbourhood, by dwelling id."""
    vac = ds.vacancies[ds.vacancies["meeting_date"] == meeting_date]
    homes = ds.dwellings[ds.dwellings["dwelling_id"].isin(vac["dwelling_id"])]
    nbh = ds.neighbourhoods.rename(columns={"name": "neighbourhood"})
    return homes.merge(nbh, on="neighbourhood_id", how="left").sort_values("dwelling_id", kind="stable")


def build_pages(ds: Dataset, out: MeetingOutputs, lang: str, tolerance: float) -> dict[str, HomePage]:
    """The page content of every home on the meeting's table, in one language."""
    with translation.override(lang):
        return _build_pages(ds, out, lang, tolerance)


def _build_pages(ds: Dataset, out: MeetingOutputs, lang: str, tolerance: float) -> dict[str, HomePage]:
    recs = out.recommendations
    contributions = _Contributions(out)
    plan = out.assignment
    planned_home = dict(zip(plan["client_id"].astype(str), plan["dwelling_id"].astype(str), strict=True))
    plan_rows = {str(r["dwelling_id"]): r for r in plan.to_dict("records")}
    rec_rows = recs.groupby("dwelling_id", sort=False).indices
    excluded_rows = out.excluded.groupby("dwelling_id", sort=False).indices
    providers = ds.clients.set_index("client_id")["care_provider"].astype(str).to_dict()
    extra = [c for c in OPTIONAL_REC_COLUMNS if c in recs.columns]
    headers = [_extra_header(c) for c in extra if c not in ("chance_low", "chance_high")]
    t = TEXT.get(lang, TEXT["en"])
    columns = {c: recs[c].tolist() for c in recs.columns}  # once for the whole meeting; a row's dict when shown
    extras = _extra_values(extra, recs)
    ranks = recs["rank"].to_numpy()
    recs_p = recs["p_sustained"].to_numpy(dtype=float)
    recs_client = recs["client_id"].astype(str).to_numpy(dtype=object)
    option_rows = _html_rows(
        '<option value="{}">#{} {} ({})</option>',
        recs_client,
        ranks.tolist(),
        recs_client,
        [f"{v:.2f}" for v in recs_p],
    )
    ex = out.excluded
    excluded_html = _html_rows("<tr><td>{}</td><td>{}</td><td>{}</td></tr>", ex["client_id"], ex["rule"], ex["detail"])
    excluded_option_rows = _html_rows(
        '<option value="{}">{} ({})</option>', ex["client_id"], ex["client_id"], ex["rule"]
    )
    pages = {}
    for home in homes_frame(ds, out.meeting_date).to_dict("records"):
        did = str(home["dwelling_id"])
        positions = rec_rows.get(did, np.zeros(0, dtype=int))
        positions = np.asarray(positions)[np.argsort(ranks[positions], kind="stable")]
        ranked = recs.iloc[positions]
        excluded_at = excluded_rows.get(did, np.zeros(0, dtype=int))
        excluded = out.excluded.iloc[excluded_at]
        prow = plan_rows.get(did)
        proposed = str(prow["client_id"]) if prow is not None else ""
        p = recs_p[positions]
        prop_at = np.flatnonzero(recs_client[positions] == proposed) if proposed else np.zeros(0, dtype=int)
        ref = int(prop_at[0]) if len(prop_at) else (0 if len(positions) else None)
        close = np.zeros(len(positions), dtype=bool)
        if ref is not None:  # within the tolerance of the proposal (or the #1): no real difference
            close = np.abs(p - p[ref]) < tolerance
            close[ref] = False

        def row(i: int, pos: int, did=did, proposed=proposed, close=close) -> dict:
            r = {c: values[pos] for c, values in columns.items()}
            cid = str(r["client_id"])
            elsewhere = planned_home.get(cid)
            return {
                **r,
                "client_id": cid,
                "row": pos,
                "proposed": cid == proposed,
                "elsewhere": elsewhere if elsewhere != did else None,
                "chart": "",
                "extra": extras[pos],
                "no_real_difference": bool(close[i]),
            }

        pos_list = positions.tolist()
        top = [row(i, pos) for i, pos in enumerate(pos_list[:PAGE_CANDIDATES])]
        proposal = next((c for c in top if c["proposed"]), None)
        if proposal is None and len(prop_at):
            proposal = row(int(prop_at[0]), pos_list[int(prop_at[0])])
            top.append(proposal)
        for i, c in enumerate(top):
            if i < CHART_CANDIDATES or c["proposed"]:
                c["chart"] = contributions.chart(c["row"], lang)
        first = top[0] if top else None

        def make_rows(pos_list=pos_list, row=row) -> list[dict]:
            return [row(i, pos) for i, pos in enumerate(pos_list)]

        why = []
        if proposal is not None and prow is not None:
            if isinstance(prow.get("why"), str) and prow["why"]:
                why.append(prow["why"])
            assert first is not None
            if proposal["rank"] == 1:
                why.append(_("The proposal is the #1 candidate for this home."))
            elif first["elsewhere"]:
                why.append(
                    _("#1 candidate %(client)s is planned for home %(home)s.")
                    % {"client": first["client_id"], "home": first["elsewhere"]}
                )
            else:
                why.append(
                    _("#1 candidate %(client)s is not placed by the plan (see the whole plan).")
                    % {"client": first["client_id"]}
                )
        line, nbh_line = _home_lines(home, t, lang)
        pages[did] = HomePage(
            dwelling_id=did,
            lang=lang,
            line=line,
            nbh_line=nbh_line,
            ranked=ranked,
            excluded=excluded,
            proposed_client_id=proposed,
            proposal=proposal,
            why=why,
            top=top,
            extra_cols=extra,
            extra_headers=headers,
            choices=_joined(option_rows, positions),
            excluded_rows=_joined(excluded_html, excluded_at),
            excluded_options=_joined(excluded_option_rows, excluded_at),
            providers={cid: providers.get(cid, "") for cid in recs_client[positions]},
            tolerance=tolerance,
            make_rows=make_rows,
            top_cells=[(c["client_id"], *row_cells(c, extra)) for c in top],
        ).prebuilt()
    return pages
