"""Suggested countermeasures: what on-call should try first, chosen by finding type.

A ticket names the detector that found the problem (``psi``, ``quality.null_rate``,
``score.psi``, ``skew``, ``embedding``, ...). :data:`COUNTERMEASURES` maps a
detector-name *prefix* to one suggestion and the reason for it; the longest
prefix that matches wins, so ``quality.null_rate`` can differ from the generic
``quality``. The table is data, not code, so reviewers can read it in one place
(docs/tickets.md prints it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["COUNTERMEASURES", "Countermeasure", "suggest"]


@dataclass(frozen=True, slots=True)
class Countermeasure:
    """One suggested action and why it fits the finding."""

    action: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"action": self.action, "reason": self.reason}


COUNTERMEASURES: Final[dict[str, Countermeasure]] = {
    "psi": Countermeasure(
        "retrain on recent data for this cohort",
        "the input distribution of the cohort moved away from the training data "
        "(population stability index past its threshold); a model fitted on recent "
        "traffic of this cohort sees the population it now serves",
    ),
    "score": Countermeasure(
        "check the input features of this cohort, then retrain on recent data",
        "the model's output distribution shifted; the inputs usually moved first, "
        "and a retrain on recent labelled traffic restores calibration",
    ),
    "quality": Countermeasure(
        "check the upstream pipeline that produces these features",
        "a data-quality rate rose: the values reaching the model are broken, not "
        "the world; retraining on broken data would learn the defect",
    ),
    "quality.null_rate": Countermeasure(
        "check the upstream pipeline (joins, defaults, source outages)",
        "more values arrive null than in training: a failed join, a new default or "
        "a source outage upstream usually explains it",
    ),
    "quality.missing_rate": Countermeasure(
        "check the upstream pipeline (dropped fields, feature lookups)",
        "fields are absent from events: a producer or a feature lookup stopped "
        "sending them",
    ),
    "quality.type_mismatch": Countermeasure(
        "check the producer's schema and serialisation",
        "values arrive with the wrong type (a number as text, a list as a scalar): "
        "the producer's schema or its serialiser changed",
    ),
    "quality.schema": Countermeasure(
        "check the producer's schema and serialisation",
        "events no longer match the declared schema: a producer deployed a new "
        "version without the consumers",
    ),
    "quality.out_of_range": Countermeasure(
        "check units and the upstream transformation of this feature",
        "values fall outside the declared range, which often means a unit change "
        "(months for years, cents for euros) or a broken transformation",
    ),
    "quality.unseen_category": Countermeasure(
        "check the producer for new or renamed categories, then retrain if they are real",
        "categories unknown to the training data appear: a renamed code is a "
        "pipeline fix, a genuinely new category needs new training data",
    ),
    "quality.duplicate_event_id": Countermeasure(
        "check the producer's retries and the delivery guarantees",
        "the same event id arrives more than once: retries without idempotence "
        "double count traffic",
    ),
    "skew": Countermeasure(
        "check serving/training transformation parity and units",
        "online and offline values of the same entity differ: the serving path "
        "transforms features differently from the training path",
    ),
    "skew.freshness": Countermeasure(
        "check the feature materialisation jobs",
        "online feature values are older than allowed: a materialisation job is "
        "late or failing",
    ),
    "freshness": Countermeasure(
        "check the feature materialisation jobs",
        "online feature values are older than allowed: a materialisation job is "
        "late or failing",
    ),
    "canary": Countermeasure(
        "halt the rollout: send this route's traffic back to the champion",
        "the route's inputs or predictions differ from the champion's in the same cohort and "
        "window, so the new model or its serving path behaves differently; stop before more "
        "traffic moves, then compare the two versions on the bins that moved",
    ),
    "slo": Countermeasure(
        "compare the cohort's labelled errors with its recent traffic, then retrain on recent labels",
        "the model's measured quality on delayed labels broke its objective: when no input "
        "or score detector moved, the relation between inputs and outcomes changed (new "
        "patterns the model never learned), which only recent labelled data can teach it",
    ),
    "embedding": Countermeasure(
        "inspect new content clusters in the embedding space",
        "the embedding distribution moved: new kinds of content (topics, products, "
        "languages) arrived that the model was not trained on",
    ),
}
"""Suggestion per detector-name prefix; the longest matching prefix wins."""

_FALLBACK: Final = Countermeasure(
    "inspect the finding's evidence and the cohort's recent changes",
    "no specific countermeasure is known for this detector",
)


def suggest(detector: str) -> Countermeasure:
    """The countermeasure for a finding of ``detector``.

    A prefix matches the whole name or a dotted part of it, so ``quality``
    matches ``quality.null_rate`` but ``psi`` does not match ``psix``.

    >>> suggest("quality.null_rate").action
    'check the upstream pipeline (joins, defaults, source outages)'
    >>> suggest("quality.new_check").action
    'check the upstream pipeline that produces these features'
    >>> suggest("psi").action
    'retrain on recent data for this cohort'
    """
    best: str | None = None
    for prefix in COUNTERMEASURES:
        if detector == prefix or detector.startswith(prefix + "."):
            if best is None or len(prefix) > len(best):
                best = prefix
    return _FALLBACK if best is None else COUNTERMEASURES[best]
