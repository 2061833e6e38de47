"""Recording a decision: validate against what was shown, append to the log, move the current decision.

All in one transaction: the log record and the current decision are written together or not at all, and
the database constraints (one decision per home, one home per client) settle races between two chairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from web.models import CurrentDecision, DecisionRecord, Meeting
from web.state import AppState

REASON_CODES = (
    "client_preference",
    "care_provider_advice",
    "landlord_requirement",
    "information_not_in_data",
    "urgency",
    "other",
)
DECISION_CODES = ("plan_followed", "other_candidate", "no_placement", "rule_exception")


class DecisionError(Exception):
    """A decision the app refuses, with a message for the chair."""


@dataclass(frozen=True)
class HomeView:
    """What the page showed for one home: ranked eligible candidates, the plan's proposal, excluded candidates."""

    dwelling_id: str
    ranked: pd.DataFrame  # recommendations of this home, by rank
    proposed_client_id: str
    excluded: pd.DataFrame  # excluded candidates of this home


def home_view(state: AppState, meeting: Meeting, dwelling_id: str, lang: str) -> HomeView:
    """The suggestions of one home at a meeting, from the pages built when the meeting was loaded."""
    page = state.index(pd.Timestamp(meeting.date), lang, meeting.region).pages.get(dwelling_id)
    if page is None:
        raise DecisionError(
            _("%(home)s is not on the table of meeting %(date)s") % {"home": dwelling_id, "date": meeting.key}
        )
    return HomeView(dwelling_id, page.ranked, page.proposed_client_id, page.excluded)


def record_decision(
    state: AppState,
    meeting: Meeting,
    view: HomeView,
    *,
    decision: str,
    client_id: str = "",
    reason: str = "",
    note: str = "",
    seen_record: str = "",
    decided_by: str,
) -> DecisionRecord:
    """Append a decision for one home and make it the current one.

    Args:
        seen_record: decision_id of the current decision the chair's page showed ("" for none); a
            different current decision means the page is stale and nothing is recorded.

    Raises:
        DecisionError: invalid codes, a missing reason or note, a client not on the list, a closed
            meeting, a stale page, or a client already placed in another home at this meeting.
    """
    note = note.strip()
    if meeting.closed:
        raise DecisionError(_("this meeting is closed; the chair must reopen it before deciding"))
    if decision not in DECISION_CODES:
        raise DecisionError(
            _("unknown decision %(decision)s; expected one of %(codes)s")
            % {"decision": repr(decision), "codes": ", ".join(DECISION_CODES)}
        )
    if decision == "plan_followed":
        if not view.proposed_client_id:
            raise DecisionError(_("the plan proposes nobody for this home; choose a candidate or no placement"))
        client_id, reason = view.proposed_client_id, ""
    else:
        if reason not in REASON_CODES:
            raise DecisionError(_("a decision other than following the plan needs a reason"))
        if reason == "other" and not note:
            raise DecisionError(_("reason 'other' needs a note saying why"))
    if decision == "no_placement":
        client_id = ""
    ranked = view.ranked
    eligible = set(ranked["client_id"].astype(str))
    if decision == "other_candidate" and client_id not in eligible:
        raise DecisionError(
            _("client %(client)s is not an eligible candidate for %(home)s")
            % {"client": client_id or _("(none)"), "home": view.dwelling_id}
        )
    if decision == "rule_exception":
        if client_id not in set(view.excluded["client_id"].astype(str)):
            raise DecisionError(
                _("client %(client)s is not an excluded candidate for %(home)s")
                % {"client": client_id or _("(none)"), "home": view.dwelling_id}
            )
        if not note:
            raise DecisionError(_("a rule exception needs a note saying why the rule does not apply"))
    shown = [
        {"client_id": str(r.client_id), "rank": int(r.rank), "p": round(float(r.p_sustained), 4)}
        for r in ranked.itertuples()
    ]
    rank_of = {s["client_id"]: s["rank"] for s in shown}
    try:
        with transaction.atomic():
            current = (
                CurrentDecision.objects.select_for_update()
                .filter(meeting=meeting, dwelling_id=view.dwelling_id)
                .first()
            )
            current_id = current.record.decision_id if current else ""
            if current_id != seen_record:
                r = current.record if current else None
                if r is not None and (r.decision, r.client_id, r.reason, r.note, r.decided_by) == (
                    decision,
                    client_id,
                    reason,
                    note,
                    decided_by,
                ):
                    raise _sent_twice(view.dwelling_id, r)
                if current:
                    raise DecisionError(
                        _(
                            "%(home)s was decided by someone else since this page was opened "
                            "(%(decision)s at %(time)s); reload the page and decide again"
                        )
                        % {
                            "home": view.dwelling_id,
                            "decision": current.record.get_decision_display(),
                            "time": f"{current.record.decided_at:%H:%M:%S}",
                        }
                    )
                raise DecisionError(
                    _("the decision on %(home)s you saw has been replaced; reload the page")
                    % {"home": view.dwelling_id}
                )
            record = DecisionRecord.objects.create(
                meeting=meeting,
                dwelling_id=view.dwelling_id,
                client_id=client_id,
                decision=decision,
                reason=reason,
                note=note,
                proposed_client_id=view.proposed_client_id,
                shown_rank=rank_of.get(client_id),
                shown=shown,
                model_version=state.model_version,
                data_fingerprint=state.fingerprint,
                decided_at=timezone.now(),
                decided_by=decided_by,
                supersedes=current_id,
            )
            if current:
                current.client_id = client_id or None
                current.record = record
                current.version += 1
                current.save()
            else:
                CurrentDecision.objects.create(
                    meeting=meeting, dwelling_id=view.dwelling_id, client_id=client_id or None, record=record
                )
    except IntegrityError:
        taken = (
            CurrentDecision.objects.filter(meeting=meeting, client_id=client_id)
            .exclude(dwelling_id=view.dwelling_id)
            .first()
        )
        if taken:
            raise DecisionError(
                _("client %(client)s is already placed in %(home)s at this meeting; change that decision first")
                % {"client": client_id, "home": taken.dwelling_id}
            ) from None
        now = (
            CurrentDecision.objects.filter(meeting=meeting, dwelling_id=view.dwelling_id)
            .select_related("record")
            .first()
        )
        r = now.record if now is not None else None
        if r is not None and (r.decision, r.client_id, r.reason, r.note, r.decided_by) == (
            decision,
            client_id,
            reason,
            note,
            decided_by,
        ):  # the same form sent twice at once (PostgreSQL: both inserts raced, the unique constraint chose)
            raise _sent_twice(view.dwelling_id, r) from None
        raise DecisionError(
            _("%(home)s was decided by someone else at the same moment; reload the page") % {"home": view.dwelling_id}
        ) from None
    return record


def _sent_twice(home: str, r: DecisionRecord) -> DecisionError:
    return DecisionError(
        _("this decision on %(home)s was already recorded at %(time)s (sent twice?); nothing was added")
        % {"home": home, "time": f"{r.decided_at:%H:%M:%S}"}
    )
