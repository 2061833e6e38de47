"""Views: thin wrappers that read the loaded state and the app's tables and render templates.

Suggestions come from `reports.suggestions.meeting_outputs` (through `web.state`); the chart from
`reports.meeting.contribution_svg`; decisions go through `web.decisions.record_decision`.
"""

from __future__ import annotations

import datetime as dt
import io
from collections import Counter

import pandas as pd
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from reports.meeting import contribution_svg
from reports.reasons import feature_label
from web.decisions import DecisionError, home_view, record_decision
from web.export import decision_rows
from web.models import REASONS, CurrentDecision, DecisionRecord, Meeting, Note, Profile
from web.state import get_state

CHART_FEATURES = 8
CHART_CANDIDATES = 5
PRINT_TOP = 3
PAGE_CANDIDATES = 20  # rows shown before "show all"
OPTIONAL_REC_COLUMNS = ("waiting_weeks", "in_pool", "chance_low", "chance_high")
EXTRA_HEADERS = {"waiting_weeks": "Waiting (weeks)", "in_pool": "In the policy's pool"}


def _extra_value(column: str, value):
    """A shown value of an optional column: whole weeks, yes/no for pool membership."""
    if column == "in_pool":
        return "yes" if bool(value) else "no"
    if column == "waiting_weeks":
        return "" if pd.isna(value) else f"{float(value):.0f}"
    return value


def profile_of(user) -> Profile:
    """The user's profile (created on first use)."""
    profile, _ = Profile.objects.get_or_create(user=user)
    return profile


def _meeting(date: str) -> Meeting:
    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        raise Http404("not a meeting date") from None
    return get_object_or_404(Meeting, date=day)


def _homes_frame(state, meeting: Meeting) -> pd.DataFrame:
    ds = state.ds
    vac = ds.vacancies[ds.vacancies["meeting_date"] == pd.Timestamp(meeting.date)]
    homes = ds.dwellings[ds.dwellings["dwelling_id"].isin(vac["dwelling_id"])]
    nbh = ds.neighbourhoods.rename(columns={"name": "neighbourhood"})
    return homes.merge(nbh, on="neighbourhood_id", how="left").sort_values("dwelling_id", kind="stable")


def _home_line(home: dict) -> str:
    floor = "ground floor" if int(home["floor"]) == 0 else f"floor {int(home['floor'])}"
    lift = ", lift" if bool(home["has_lift"]) else ""
    return (
        f"{home['dwelling_type'].replace('_', ' ')}, {int(home['rooms'])} rooms, {float(home['floor_area_m2']):.0f} m², "
        f"{floor}{lift}, € {float(home['rent_eur']):.0f}/month · {home['neighbourhood']} ({home['district']}) · "
        f"{home['landlord']}"
    )


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
    for m in Meeting.objects.all():
        n_homes = int((state.ds.vacancies["meeting_date"] == pd.Timestamp(m.date)).sum())
        decided = m.current.count()
        rows.append({"meeting": m, "homes": n_homes, "decided": decided, "open": n_homes - decided})
    return render(request, "web/meetings.html", {"rows": rows})


@permission_required("web.view_agenda", raise_exception=True)
def meeting(request: HttpRequest, date: str) -> HttpResponse:
    """One meeting: every home with the plan's proposal and whether it is decided."""
    m = _meeting(date)
    state = get_state()
    lang = profile_of(request.user).lang
    out = state.outputs(pd.Timestamp(m.date), lang)
    plan = out.assignment.set_index("dwelling_id")
    current = {c.dwelling_id: c for c in m.current.select_related("record")}
    homes = []
    for home_row in _homes_frame(state, m).to_dict("records"):
        did = home_row["dwelling_id"]
        proposal = plan.loc[did] if did in plan.index else None
        homes.append(
            {
                "dwelling_id": did,
                "line": _home_line(home_row),
                "proposed": "" if proposal is None else str(proposal["client_id"]),
                "proposed_p": None if proposal is None else float(proposal["p_sustained"]),
                "n_eligible": int((out.recommendations["dwelling_id"] == did).sum()),
                "current": current.get(did),
            }
        )
    decided = sum(1 for h in homes if h["current"])
    return render(
        request,
        "web/meeting.html",
        {"m": m, "homes": homes, "decided": decided, "open": len(homes) - decided, "warnings": out.warnings},
    )


def _chart(index, dwelling_id: str, client_id: str, lang: str) -> str:
    rows = index.pair_explanations(dwelling_id, client_id)
    rows = rows.reindex(rows["contribution"].abs().sort_values(ascending=False).index)[:CHART_FEATURES]
    items = [(feature_label(str(r.feature), lang), float(r.contribution)) for r in rows.itertuples()]
    scale = max((abs(v) for _, v in items), default=1.0)
    return contribution_svg(items, scale=scale, lang=lang)


@permission_required("web.view_agenda", raise_exception=True)
def home_detail(request: HttpRequest, date: str, dwelling_id: str) -> HttpResponse:
    """One home: the plan's proposal first with why, the ranked candidates, the excluded ones, notes, decision."""
    m = _meeting(date)
    state = get_state()
    profile = profile_of(request.user)
    lang = profile.lang
    index = state.index(pd.Timestamp(m.date), lang)
    out = index.outputs
    homes = _homes_frame(state, m)
    if dwelling_id not in set(homes["dwelling_id"]):
        raise Http404("this home is not on this meeting's table")
    view = home_view(state, m, dwelling_id, lang)
    plan = out.assignment
    planned_home = dict(zip(plan["client_id"].astype(str), plan["dwelling_id"].astype(str), strict=False))
    extra = [c for c in OPTIONAL_REC_COLUMNS if c in view.ranked.columns]
    show_all = bool(request.GET.get("all"))
    shown = view.ranked if show_all else view.ranked.head(PAGE_CANDIDATES)
    proposed_row = view.ranked[view.ranked["client_id"] == view.proposed_client_id]
    if not show_all and len(proposed_row) and view.proposed_client_id not in set(shown["client_id"]):
        shown = pd.concat([shown, proposed_row])
    candidates = []
    for i, r in enumerate(shown.to_dict("records")):
        cid = str(r["client_id"])
        candidates.append(
            {
                **r,
                "client_id": cid,
                "proposed": cid == view.proposed_client_id,
                "elsewhere": planned_home.get(cid) if planned_home.get(cid) != dwelling_id else None,
                "chart": mark_safe(_chart(index, dwelling_id, cid, lang)) if i < CHART_CANDIDATES else "",
                "extra": {c: _extra_value(c, r.get(c)) for c in extra},
            }
        )
    proposal = next((c for c in candidates if c["proposed"]), None)
    why = []
    if proposal is not None:
        prow = plan[plan["dwelling_id"] == dwelling_id].iloc[0].to_dict()
        if "why" in prow and isinstance(prow["why"], str) and prow["why"]:
            why.append(prow["why"])
        if proposal["rank"] > 1 and candidates:
            first = candidates[0]
            if first["elsewhere"]:
                why.append(f"#1 candidate {first['client_id']} is planned for home {first['elsewhere']}.")
            else:
                why.append(f"#1 candidate {first['client_id']} is not placed by the plan (see the whole plan).")
        elif proposal["rank"] == 1:
            why.append("The proposal is the #1 candidate for this home.")
    if proposal is not None:
        proposal["chart"] = mark_safe(_chart(index, dwelling_id, proposal["client_id"], lang))
    current = CurrentDecision.objects.filter(meeting=m, dwelling_id=dwelling_id).select_related("record").first()
    history = DecisionRecord.objects.filter(meeting=m, dwelling_id=dwelling_id)
    providers = state.ds.clients.set_index("client_id")["care_provider"]
    own = {
        c["client_id"]
        for c in candidates
        if profile.care_provider and providers.get(c["client_id"]) == profile.care_provider
    }
    return render(
        request,
        "web/home.html",
        {
            "m": m,
            "dwelling_id": dwelling_id,
            "line": _home_line(homes[homes["dwelling_id"] == dwelling_id].iloc[0].to_dict()),
            "proposal": proposal,
            "why": why,
            "candidates": candidates,
            "n_eligible": len(view.ranked),
            "choices": format_html_join(
                "",
                '<option value="{}">#{} {} ({})</option>',
                zip(
                    view.ranked["client_id"],
                    view.ranked["rank"],
                    view.ranked["client_id"],
                    view.ranked["p_sustained"].map("{:.2f}".format),
                    strict=True,
                ),
            ),
            "show_all": show_all,
            "extra_cols": extra,
            "extra_headers": [EXTRA_HEADERS.get(c, c) for c in extra if c not in ("chance_low", "chance_high")],
            "n_excluded": len(view.excluded),
            # built here rather than in the template: a home can have hundreds of excluded candidates
            "excluded_rows": format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                zip(view.excluded["client_id"], view.excluded["rule"], view.excluded["detail"], strict=True),
            ),
            "excluded_options": format_html_join(
                "",
                '<option value="{}">{} ({})</option>',
                zip(view.excluded["client_id"], view.excluded["client_id"], view.excluded["rule"], strict=True),
            ),
            "current": current,
            "history": history,
            "notes": Note.objects.filter(meeting=m, dwelling_id=dwelling_id),
            "reasons": REASONS,
            "own_clients": own,
            "can_decide": request.user.has_perm("web.decide"),
            "can_note": request.user.has_perm("web.add_meeting_note"),
        },
    )


@require_POST
@permission_required("web.decide", raise_exception=True)
def decide(request: HttpRequest, date: str, dwelling_id: str) -> HttpResponse:
    """Record the chair's decision for one home (refused with a message when invalid or stale)."""
    m = _meeting(date)
    state = get_state()
    view = home_view(state, m, dwelling_id, profile_of(request.user).lang)
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
        messages.success(request, f"Recorded for {dwelling_id}: {rec.get_decision_display()}.")
    return redirect("home_detail", date=date, dwelling_id=dwelling_id)


@require_POST
@permission_required("web.add_meeting_note", raise_exception=True)
def add_note(request: HttpRequest, date: str, dwelling_id: str) -> HttpResponse:
    """Add a note to a home (htmx: returns the notes list; otherwise back to the home)."""
    m = _meeting(date)
    text = request.POST.get("text", "").strip()
    if text:
        Note.objects.create(
            meeting=m, dwelling_id=dwelling_id, author=profile_of(request.user).pseudonym, text=text[:2000]
        )
    if request.headers.get("HX-Request"):
        return render(request, "web/_notes.html", {"notes": Note.objects.filter(meeting=m, dwelling_id=dwelling_id)})
    return redirect("home_detail", date=date, dwelling_id=dwelling_id)


@require_POST
@permission_required("web.decide", raise_exception=True)
def set_closed(request: HttpRequest, date: str) -> HttpResponse:
    """The chair opens or closes a meeting (a closed meeting takes no decisions)."""
    m = _meeting(date)
    m.closed = request.POST.get("closed") == "1"
    m.save(update_fields=["closed"])
    return redirect("meeting", date=date)


@permission_required("web.view_agenda", raise_exception=True)
def print_view(request: HttpRequest, date: str) -> HttpResponse:
    """A compact printable meeting: the plan and the top 3 per home, about 3 homes per A4 page."""
    m = _meeting(date)
    state = get_state()
    out = state.outputs(pd.Timestamp(m.date), profile_of(request.user).lang)
    recs = out.recommendations
    plan = out.assignment.set_index("dwelling_id")
    homes = []
    for home_row in _homes_frame(state, m).to_dict("records"):
        did = home_row["dwelling_id"]
        top = recs[recs["dwelling_id"] == did].sort_values("rank").head(PRINT_TOP).to_dict("records")
        homes.append(
            {
                "dwelling_id": did,
                "line": _home_line(home_row),
                "proposed": str(plan.loc[did, "client_id"]) if did in plan.index else "",
                "top": top,
            }
        )
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
        return HttpResponseForbidden("Only staff of this client's own care provider see the full profile.")
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
