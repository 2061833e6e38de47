"""params.yaml `fairness:`: attributes, group sizes, tolerances and the gate's thresholds (fixed before use)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fairness.catalogue import HUMAN, METRICS, PLAN
from features.errors import UserError

ERR_UNKNOWN_ATTRIBUTE = "params: fairness.{where} names unknown attribute {name!r}; known: {known}"


ERR_UNKNOWN_CHECK = "params: fairness.gate.{where} names unknown metric {name!r}; known: {known}"


# Attributes of a client at a meeting (candidates and placements) and of a placement only.
CLIENT_ATTRIBUTES = ("gender", "age_band", "migration_background", "household_type", "care_provider")


PLACEMENT_ATTRIBUTES = (*CLIENT_ATTRIBUTES, "district")


INTERSECTION_SEP = "_x_"


GROUP_SEP = " / "


REPLAY_METRIC = "placement_rate"


REPLAY_WAIT_METRIC = "placed_waiting_median_weeks"


@dataclass(frozen=True)
class GateParams:
    """Pass/fail thresholds, fixed before use.

    Keys of `max_difference` and `min_ratio` are `source.metric` (e.g.
    `model.true_positive_rate`); the statistic is taken over the judgeable groups
    (largest minus smallest value; smallest over largest value). `max_ratio_drop`
    compares the plan with the human decisions on the candidates: the plan's
    ratio may be at most this much lower than the human ratio. `max_replay_ratio_drop`
    does the same over time: the policy replayed as a queue over the held-out weeks
    (planning.replay) against what the meeting did in those weeks; its only metric is
    `placement_rate`, the share of the clients queued in those weeks who got a home.
    `max_replay_wait_widening` judges the same replay's waiting times: per group, the
    median waiting weeks of the clients placed (`placed_waiting_median_weeks`); the gap
    between the longest- and the shortest-waiting group under the policy may be at most
    this many weeks wider than the meeting's own gap between the same groups.
    """

    attributes: tuple[str, ...]
    max_difference: dict[str, float]
    min_ratio: dict[str, float]
    max_ratio_drop: dict[str, float]
    fail_when_unjudgeable: bool
    max_replay_ratio_drop: dict[str, float] = field(default_factory=dict)
    max_replay_wait_widening: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for where, mapping, known in (
            ("max_replay_ratio_drop", self.max_replay_ratio_drop, REPLAY_METRIC),
            ("max_replay_wait_widening", self.max_replay_wait_widening, REPLAY_WAIT_METRIC),
        ):
            unknown = sorted(set(mapping) - {known})
            if unknown:
                raise UserError(ERR_UNKNOWN_CHECK.format(where=where, name=unknown[0], known=known))


@dataclass(frozen=True)
class Decision:
    """A recorded change to the audit or gate: what was replaced, by what, when and why."""

    date: str
    replaces: str
    by: str
    reason: str


@dataclass(frozen=True)
class FairnessParams:
    """params.yaml `fairness:` (see its comments)."""

    age_band_edges: tuple[int, ...]
    attributes: tuple[str, ...]
    intersections: tuple[tuple[str, ...], ...]
    min_group_size: int
    low_support: int
    gate: GateParams
    decisions: tuple[Decision, ...] = ()

    def __post_init__(self) -> None:
        known = self.all_attributes(PLACEMENT_ATTRIBUTES)
        for name in self.attributes:
            if name not in PLACEMENT_ATTRIBUTES:
                raise UserError(
                    ERR_UNKNOWN_ATTRIBUTE.format(where="attributes", name=name, known=", ".join(PLACEMENT_ATTRIBUTES))
                )
        for combo in self.intersections:
            for name in combo:
                if name not in PLACEMENT_ATTRIBUTES:
                    raise UserError(
                        ERR_UNKNOWN_ATTRIBUTE.format(
                            where="intersections", name=name, known=", ".join(PLACEMENT_ATTRIBUTES)
                        )
                    )
        for name in self.gate.attributes:
            if name not in known:
                raise UserError(
                    ERR_UNKNOWN_ATTRIBUTE.format(where="gate.attributes", name=name, known=", ".join(known))
                )
        names = {f"{m.source}.{m.name}" for m in METRICS}
        for where, mapping in (("max_difference", self.gate.max_difference), ("min_ratio", self.gate.min_ratio)):
            for key in mapping:
                if key not in names:
                    raise UserError(ERR_UNKNOWN_CHECK.format(where=where, name=key, known=", ".join(sorted(names))))
        plan_human = {m.name for m in METRICS if m.source == PLAN} & {m.name for m in METRICS if m.source == HUMAN}
        for key in self.gate.max_ratio_drop:
            if key not in plan_human:
                raise UserError(
                    ERR_UNKNOWN_CHECK.format(where="max_ratio_drop", name=key, known=", ".join(sorted(plan_human)))
                )

    def all_attributes(self, available: tuple[str, ...]) -> tuple[str, ...]:
        """The single attributes and intersections that can be formed from `available` columns."""
        single = tuple(a for a in self.attributes if a in available)
        combos = tuple(intersection_name(c) for c in self.intersections if all(a in available for a in c))
        return single + combos


def intersection_name(attributes: tuple[str, ...]) -> str:
    """Column name of an intersection, e.g. `gender_x_migration_background`."""
    return INTERSECTION_SEP.join(attributes)
