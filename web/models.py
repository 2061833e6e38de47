"""The app's tables: meetings, the append-only decision log, the current decision per home, notes, profiles."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

DECISIONS = [
    ("plan_followed", _("follow the plan")),
    ("other_candidate", _("another eligible candidate")),
    ("no_placement", _("no placement this week")),
    ("rule_exception", _("rule exception (ineligible candidate)")),
]
REASONS = [
    ("client_preference", _("client's preference")),
    ("care_provider_advice", _("care provider's advice")),
    ("landlord_requirement", _("landlord's requirement")),
    ("information_not_in_data", _("information the data lacks")),
    ("urgency", _("urgency")),
    ("other", _("other")),
]


KEY_SEP = "~"  # between a meeting's date and its region in URLs (region names never hold "/")


def split_key(key: str) -> tuple[str, str]:
    """(date text, region) of a meeting key (see `Meeting.key`)."""
    date, _sep, region = key.partition(KEY_SEP)
    return date, region


def new_decision_id() -> str:
    """A fresh random decision id."""
    return str(uuid.uuid4())


def new_pseudonym() -> str:
    """A fresh pseudonymous user id for the decision log."""
    return "u-" + uuid.uuid4().hex[:12]


class Meeting(models.Model):
    """One weekly meeting loaded into the app, with the data and model version its suggestions came from.

    A meeting is a region on a date (features.load: `region_of`); data without regions have one region,
    "" (DEFAULT_REGION), and then a meeting is its date.
    """

    date = models.DateField()
    region = models.CharField(max_length=64, blank=True, default="")
    data_fingerprint = models.CharField(max_length=64)
    model_version = models.CharField(max_length=200)
    closed = models.BooleanField(default=False)
    loaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-date", "region"]
        constraints = [models.UniqueConstraint(fields=["date", "region"], name="one_meeting_per_region_and_date")]
        permissions = [
            ("view_agenda", "See meetings and suggestions"),
            ("decide", "Record decisions and open or close meetings (chair)"),
            ("add_meeting_note", "Add notes to a home"),
            ("view_client_profile", "See the full ZRM profile of own provider's clients"),
            ("view_model_info", "See model versions and data checks"),
            ("view_decision_log", "See and export the decision log"),
            ("view_audit", "See the audit report and model card"),
            ("view_group_figures", "See protected-attribute group figures"),
            ("switch_dataset", "Point the app at another dataset (path or upload)"),
        ]

    def __str__(self) -> str:
        return self.key

    @property
    def key(self) -> str:
        """How URLs name the meeting: its date, then `~region` for a regional meeting ("2024-05-06~R01")."""
        return f"{self.date:%Y-%m-%d}" + (f"{KEY_SEP}{self.region}" if self.region else "")


class DecisionRecord(models.Model):
    """One decision as recorded: append-only (the database refuses UPDATE and DELETE, see migration 0002)."""

    decision_id = models.CharField(max_length=36, unique=True, default=new_decision_id, editable=False)
    meeting = models.ForeignKey(Meeting, on_delete=models.PROTECT, related_name="records")
    dwelling_id = models.CharField(max_length=64)
    client_id = models.CharField(max_length=64, blank=True, default="")
    decision = models.CharField(max_length=32, choices=DECISIONS)
    reason = models.CharField(max_length=32, choices=REASONS, blank=True, default="")
    note = models.TextField(blank=True, default="")
    proposed_client_id = models.CharField(max_length=64, blank=True, default="")
    shown_rank = models.IntegerField(null=True, blank=True)
    shown = models.JSONField(default=list)  # the ranked list and chances as shown: [{client_id, rank, p}]
    model_version = models.CharField(max_length=200)
    data_fingerprint = models.CharField(max_length=64)
    decided_at = models.DateTimeField()
    decided_by = models.CharField(max_length=64)  # pseudonymous user id, never a name
    supersedes = models.CharField(max_length=36, blank=True, default="")

    class Meta:
        ordering = ["decided_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(decision="plan_followed") | ~Q(reason=""), name="reason_unless_plan_followed"
            ),
            models.CheckConstraint(condition=~Q(reason="other") | ~Q(note=""), name="note_when_reason_other"),
        ]

    def __str__(self) -> str:
        return f"{self.decision_id} {self.dwelling_id} {self.decision}"


class CurrentDecision(models.Model):
    """The decision in force per (meeting, home): one per home, and a client in at most one home per meeting."""

    meeting = models.ForeignKey(Meeting, on_delete=models.PROTECT, related_name="current")
    dwelling_id = models.CharField(max_length=64)
    client_id = models.CharField(max_length=64, null=True, blank=True)
    record = models.OneToOneField(DecisionRecord, on_delete=models.PROTECT)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["meeting", "dwelling_id"], name="one_decision_per_home"),
            models.UniqueConstraint(
                fields=["meeting", "client_id"], condition=Q(client_id__isnull=False), name="one_home_per_client"
            ),
        ]


class Note(models.Model):
    """A member's or chair's note on a home at a meeting."""

    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="notes")
    dwelling_id = models.CharField(max_length=64)
    author = models.CharField(max_length=64)  # pseudonymous user id
    text = models.TextField(max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]


class DatasetSwitch(models.Model):
    """The dataset the app serves: the latest row is in use (every worker process follows it)."""

    path = models.CharField(max_length=1000)
    fingerprint = models.CharField(max_length=64)
    switched_by = models.CharField(max_length=64)  # pseudonymous user id, or "serve" for the command line
    switched_at = models.DateTimeField(auto_now_add=True)
    summary = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-id"]


class Profile(models.Model):
    """Per user: a pseudonymous id for the log, the language of reasons, and (care staff) the care provider."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    pseudonym = models.CharField(max_length=64, unique=True, default=new_pseudonym)
    lang = models.CharField(max_length=2, choices=[("en", "English"), ("nl", "Nederlands")], default="en")
    care_provider = models.CharField(max_length=200, blank=True, default="")


def profile_of(user) -> Profile:
    """The user's profile (created on first use; cached on the user object for the request)."""
    try:
        return user.profile
    except Profile.DoesNotExist:
        user.profile = Profile.objects.create(user=user)
        return user.profile
