"""Settings of the study's jobs (torch-free): building the stimuli and analysing the answers.

* :class:`StudySettings`      every number that shapes a study's stimuli (``fvlab study build``,
                               :func:`fvlab.study.stimuli.run_build_study`); recorded in the
                               manifest under ``build``
* :class:`ExclusionCriteria`  who counts in the analysis (P2's criteria)
* :class:`AnalysisSettings`   ``fvlab study analyze``
                               (:func:`fvlab.study.analysis_report.run_analysis`)
* :class:`TrialConfig`        trials per participant and the conditions handed out
* :class:`ServerSettings`     ``fvlab study serve`` (:func:`fvlab.study.server.create_app`)
* :class:`PowerSettings`      ``fvlab study power`` (:func:`fvlab.study.power.run_power`)
* :func:`parse_units`         ``"bn2:0-3,bn3:5"`` text → ``(layer, unit)`` pairs (for the CLI)

Validation happens once, on construction; errors are :class:`fvlab.jobs.SettingsError` naming
the parameter. Whether units exist in the model is checked when the build runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fvlab.errors import FvlabError
from fvlab.jobs import Settings, SettingsError, at_least, choice, in_range, positive
from fvlab.study.manifest import CONDITIONS

#: a unit of a layer: (layer name, channel index)
LayerUnit = tuple[str, int]


def parse_units(text: str, layers: Sequence[str] = ()) -> list[LayerUnit]:
    """Parse ``bn2:0-3,bn3:5,bn4:1-2`` (a number without ``layer:`` continues the previous
    layer), or plain ``0-3`` applied to every layer in ``layers``; repeats are dropped."""
    from fvlab.int_lists import parse_int_list

    pairs: list[LayerUnit] = []
    current: str | None = None
    plain: list[str] = []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        if ":" in token:
            current, spec = token.rsplit(":", 1)
            if not current:
                raise FvlabError(f"missing layer name before ':' in {token!r}")
            pairs += [(current, u) for u in parse_int_list(spec)]
        elif current is not None:
            pairs += [(current, u) for u in parse_int_list(token)]
        else:
            plain.append(token)
    if plain:
        if not layers:
            raise FvlabError(
                f"units {','.join(plain)!r} have no layer: write them as LAYER:UNITS "
                "(e.g. bn3:0-5) or name the layers they apply to"
            )
        ids = parse_int_list(",".join(plain))
        pairs = [(layer, u) for layer in layers for u in ids] + pairs
    if not pairs:
        raise FvlabError(f"no units in {text!r}; e.g. bn2:0-3,bn3:5,bn4:1-2")
    return list(dict.fromkeys(pairs))


def _layer_units(units: Sequence[Sequence]) -> tuple[LayerUnit, ...]:
    """``units`` as a tuple of (layer, unit) pairs, checked: names non-empty, units ≥ 0."""
    try:
        pairs = tuple((str(layer), int(unit)) for layer, unit in units)
    except (TypeError, ValueError) as exc:
        raise SettingsError("units", f"must be (layer, unit) pairs, got {units!r}") from exc
    if not pairs:
        raise SettingsError("units", "none given; e.g. (('bn3', 0), ('bn4', 2))")
    bad = [f"{layer}:{unit}" for layer, unit in pairs if not layer or unit < 0]
    if bad:
        raise SettingsError("units", f"need a layer name and a unit >= 0; got {', '.join(bad)}")
    if len(set(pairs)) != len(pairs):
        raise SettingsError("units", "repeat; give each (layer, unit) once")
    return pairs


@dataclass(frozen=True)
class StudySettings(Settings):
    """Every number that shapes a study's stimuli (P2's values in docs/study-stimuli.md).

    Natural exemplars come from ``split`` of ``data`` (default: Fashion-MNIST; an image folder
    for other models). ``model_source`` says how to load the model again
    (``fvlab.load(model_source, weights)``; default: the model's name)."""

    units: tuple[LayerUnit, ...]  # the main units, (layer, unit) pairs
    top_k: int = 200  # natural exemplars kept per unit
    bins: int = 10  # equal rank bins of the top-k: bin 0 queries, one reference per other bin
    sets_per_unit: int = 10  # image sets per unit, each with its own query and references
    occluder_fraction: float = 0.4  # occluder side / image side, in (0, 1)
    stride: int = 2  # px between occluder positions
    blur_stride: int = 4  # px between candidate sharp windows of the blur references
    fv_steps: int = 256  # optimisation updates of the feature visualizations
    diversity: float = 1.0  # λ of the diversity term (activation in units of its std)
    catch_units: int = 3  # easy units for catch trials, picked automatically
    practice_units: int = 2  # easy units for the practice, picked automatically
    blur_kernel: int | None = None  # odd Gaussian kernel side, px (None: P2's 21 px, scaled)
    blur_sigma: float | None = None  # Gaussian σ, px (None: from the kernel, as OpenCV)
    split: str = "train"  # Fashion-MNIST split of the exemplars: train or test
    max_images: int | None = None  # stream only the first N images (None: all)
    batch_size: int = 500  # images per forward pass (and FV references per shard)
    shard_images: int = 10000  # images per shard of the exemplar sweep (docs/scale.md)
    seed: int = 0  # image-set draws and feature visualizations
    data: Path | None = None  # natural images (see fvlab.data.natural.open_dataset)
    model_source: str | None = None

    #: fields not recorded in the manifest under ``build`` (recorded elsewhere, or — the shard
    #: size — how the build ran, which does not change any stimulus)
    NOT_RECORDED = ("units", "data", "model_source", "shard_images")

    def validate(self) -> None:
        self.normalise("units", _layer_units(self.units))
        choice("split", self.split, ("train", "test"))
        if self.bins < 2 or self.top_k % self.bins:
            raise SettingsError(
                "bins",
                f"top_k ({self.top_k}) must split into bins ({self.bins}) equal rank bins "
                "with bins >= 2 (e.g. top_k 200, bins 10)",
            )
        bin_size = self.top_k // self.bins
        if not 1 <= self.sets_per_unit <= bin_size:
            raise SettingsError(
                "sets_per_unit",
                f"{self.sets_per_unit} must be between 1 and the rank-bin size {bin_size} "
                "(= top_k / bins), so that every set gets its own images",
            )
        if not 0 < self.occluder_fraction < 1:
            raise SettingsError(
                "occluder_fraction", f"must be in (0, 1), got {self.occluder_fraction}"
            )
        for name in ("fv_steps", "batch_size", "shard_images", "stride", "blur_stride"):
            at_least(name, getattr(self, name), 1)
        at_least("catch_units", self.catch_units, 0)
        at_least("practice_units", self.practice_units, 0)
        if self.max_images is not None and self.max_images < self.top_k:
            raise SettingsError("max_images", f"{self.max_images} is below top_k {self.top_k}")
        if self.blur_kernel is not None and (self.blur_kernel < 1 or self.blur_kernel % 2 == 0):
            raise SettingsError("blur_kernel", f"must be an odd size >= 1, got {self.blur_kernel}")
        positive("blur_sigma", self.blur_sigma)

    def recorded(self) -> dict:
        """The settings as the manifest records them under ``build``."""
        return {k: v for k, v in self.to_dict().items() if k not in self.NOT_RECORDED}


@dataclass(frozen=True)
class ExclusionCriteria(Settings):
    """Who counts (P2's criteria). Times in seconds; fractions in [0, 1].

    The total time is the SERVER's: enrolment to stored submission. The instruction time is
    the page's report, capped at that total (a page cannot have spent longer on the
    instructions than the server saw it take). As P2, the no-reference condition (``none``,
    no references to study) has its own, lower minima (``none_min_total_s``,
    ``none_min_instructions_s``)."""

    min_catch_fraction: float = 2 / 3
    min_instructions_s: float = 20.0
    min_total_s: float = 90.0
    max_total_s: float = 900.0
    none_min_instructions_s: float = 15.0
    none_min_total_s: float = 40.0
    require_both_sides: bool = True
    max_practice_attempts: int = 5

    def validate(self) -> None:
        in_range("min_catch_fraction", self.min_catch_fraction, 0, 1)
        for name in ("min_total_s", "none_min_total_s"):
            if getattr(self, name) > self.max_total_s:
                raise SettingsError(
                    "max_total_s",
                    f"total-time window is empty: {name} {getattr(self, name)} s > max "
                    f"{self.max_total_s} s",
                )

    def window(self, condition: str) -> tuple[float, float, float]:
        """(min instruction time, min total time, max total time) in s for ``condition``."""
        if condition == "none":
            return self.none_min_instructions_s, self.none_min_total_s, self.max_total_s
        return self.min_instructions_s, self.min_total_s, self.max_total_s


@dataclass(frozen=True)
class AnalysisSettings(Settings):
    """``fvlab study analyze``: the answers in database ``db`` (a SQLAlchemy URL or a SQLite
    file; default ``study_dir/study.sqlite``) of the study in ``study_dir``, who counts
    (``criteria``), whether to score the image baselines and the machine observer (which
    loads the study's model), and the bootstrap's ``n_resamples`` and ``seed``."""

    study_dir: Path
    db: str | None = None
    criteria: ExclusionCriteria = field(default_factory=ExclusionCriteria)
    baselines: bool = True
    observer: bool = True
    n_resamples: int = 9999
    seed: int = 0

    def validate(self) -> None:
        self.normalise("study_dir", Path(self.study_dir))
        at_least("n_resamples", self.n_resamples, 1)


@dataclass(frozen=True)
class TrialConfig(Settings):
    """How many trials of each kind a participant gets, and in which conditions."""

    n_main: int = 18
    n_catch: int = 3
    n_practice: int = 2
    conditions: tuple[str, ...] = CONDITIONS

    def validate(self) -> None:
        self.normalise("conditions", tuple(self.conditions))
        lows = {"n_main": 1, "n_catch": 0, "n_practice": 0}
        for name, low in lows.items():
            if getattr(self, name) < low:
                raise SettingsError(
                    name,
                    f"trial counts must be main >= 1, catch >= 0, practice >= 0; got main="
                    f"{self.n_main}, catch={self.n_catch}, practice={self.n_practice}",
                )
        unknown = [c for c in self.conditions if c not in CONDITIONS]
        if unknown or not self.conditions or len(set(self.conditions)) != len(self.conditions):
            raise SettingsError(
                "conditions",
                f"must be distinct names from {', '.join(CONDITIONS)}; "
                f"got {', '.join(self.conditions) or 'none'}",
            )


_URL_FORBIDDEN = set("\"'<>`\\ ") | {chr(c) for c in range(32)} | {chr(127)}


def _check_url(name: str, url: str | None) -> None:
    """An end-of-study URL: absolute http(s), or a path on this server; no quotes, spaces,
    angle brackets or control characters (it is put into the page)."""
    if url is None:
        return
    if not url.startswith(("http://", "https://", "/")) or url.startswith("//"):
        raise SettingsError(name, f"must start with http://, https:// or /, got {url!r}")
    bad = sorted(set(url) & _URL_FORBIDDEN)
    if bad:
        raise SettingsError(name, f"may not contain {bad[0]!r} (escape it as %XX), got {url!r}")


@dataclass(frozen=True)
class ServerSettings(Settings):
    """Server-side settings of one running study (all stored decisions derive from these):
    the trial-list ``seed`` and ``trials`` per participant, practice rounds allowed, seconds
    after which an unsubmitted participant stops counting for balance, practice feedback and
    redirect pauses (ms), where participants go at the end (``completion_url``; default the
    server's own page showing ``completion_code``) and after a failed practice
    (``practice_failed_url``; default the server's own page), the consent text (HTML, the
    operator's), the largest request body (bytes), and at most ``enrol_limit`` new
    enrolments per client address within ``enrol_window_s`` seconds (0: no limit)."""

    seed: int = 0
    trials: TrialConfig = field(default_factory=TrialConfig)
    max_practice_attempts: int = 5
    abandon_after_s: float = 3600.0  # an unsubmitted participant stops counting for balance
    feedback_ms: int = 1000
    completion_url: str | None = None  # e.g. https://app.prolific.com/submissions/complete?cc=X
    completion_code: str | None = None  # shown on the default end page (None: per participant)
    practice_failed_url: str | None = None  # e.g. Prolific's "screened out" completion URL
    consent_html: str | None = None  # None: a generic text (docs/study.md)
    redirect_delay_ms: int = 3000
    max_body_bytes: int = 1_000_000
    enrol_limit: int = 20
    enrol_window_s: float = 3600.0

    def validate(self) -> None:
        at_least("max_practice_attempts", self.max_practice_attempts, 1)
        at_least("max_body_bytes", self.max_body_bytes, 10_000)
        at_least("enrol_limit", self.enrol_limit, 0)
        positive("enrol_window_s", self.enrol_window_s)
        _check_url("completion_url", self.completion_url)
        _check_url("practice_failed_url", self.practice_failed_url)
        code = self.completion_code
        if code is not None and not (
            0 < len(code) <= 64
            and all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in code)
        ):
            raise SettingsError(
                "completion_code", f"must be 1-64 letters, digits, '-' or '_', got {code!r}"
            )

    def browser_view(self) -> dict[str, Any]:
        """The settings the experiment page needs."""
        return {
            "max_practice_attempts": self.max_practice_attempts,
            "feedback_ms": self.feedback_ms,
            "completion_url": self.completion_url,
            "practice_failed_url": self.practice_failed_url or "ended",
            "redirect_delay_ms": self.redirect_delay_ms,
        }


@dataclass(frozen=True)
class PowerSettings(Settings):
    """A two-condition design and what the power analysis should reach."""

    p1: float = 0.68  # mean accuracy in one condition
    p2: float = 0.60  # ... in the other
    n_trials: int = 18  # main trials per participant
    sd: float = 0.05  # τ, SD of true accuracy between participants (accuracy units)
    alpha: float = 0.05  # significance level, two-sided
    power: float = 0.8  # wanted probability of rejecting
    exclusion_rate: float = 0.0  # expected fraction of excluded participants, in [0, 1)
    n_sims: int = 2000  # simulated studies per sample size
    seed: int = 0  # of the simulations: the same seed gives the same powers

    def validate(self) -> None:
        for name in ("p1", "p2"):
            p = getattr(self, name)
            if not 0 < p < 1:
                raise SettingsError(name, f"must be an accuracy in (0, 1), got {p}")
            if self.sd > 0 and self.sd**2 >= p * (1 - p):
                raise SettingsError(
                    "sd",
                    f"participant sd {self.sd} is too large for accuracy {p}: need sd² < p(1 − p)",
                )
        at_least("n_trials", self.n_trials, 1)
        at_least("sd", self.sd, 0)
        at_least("n_sims", self.n_sims, 1)
        for name in ("alpha", "power"):
            if not 0 < getattr(self, name) < 1:
                raise SettingsError(name, f"must be in (0, 1), got {getattr(self, name)}")
        if not 0 <= self.exclusion_rate < 1:
            raise SettingsError(
                "exclusion_rate", f"exclusion rate must be in [0, 1), got {self.exclusion_rate}"
            )

    def need_difference(self) -> None:
        """A sample size exists only for p1 ≠ p2."""
        if self.p1 == self.p2:
            raise SettingsError("p2", "p1 and p2 are equal: there is no difference to detect")
