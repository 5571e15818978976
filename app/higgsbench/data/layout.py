"""Facts of the data every layer shares: UCI HIGGS's columns, the fraction of signal in it,
and the prepared dataset's layout on disk.

The UCI file has no header: column 0 is the label (1 = signal, 0 = background), then 21
low-level features (what the detector measures: lepton, missing energy, four jets with
b-tags) and 7 high-level features (invariant masses physicists derive from them), as in
Baldi, Sadowski and Whiteson (2014).
"""

from higgsbench.common.errors import UsageError

LABEL = "label"

LOW_LEVEL = [
    "lepton_pt",
    "lepton_eta",
    "lepton_phi",
    "missing_energy_magnitude",
    "missing_energy_phi",
    *[f"jet{j}_{q}" for j in range(1, 5) for q in ("pt", "eta", "phi", "btag")],
]
HIGH_LEVEL = ["m_jj", "m_jjj", "m_lv", "m_jlv", "m_bb", "m_wbb", "m_wwbb"]
ALL_FEATURES = LOW_LEVEL + HIGH_LEVEL
COLUMNS = [LABEL, *ALL_FEATURES]

# 5.83 M of UCI's 11 M events are signal; the toy generator draws the same fraction, and
# plots that know only a test set's size split it so for their error bars.
SIGNAL_FRACTION = 0.53

# The prepared dataset: Parquet train|val|test and stats.json, whose "format" starts with
# FORMAT_NAME (that is how a directory is known to be one).
FORMAT_NAME = "higgsbench-prepared"
FORMAT = f"{FORMAT_NAME}/1"
SPLITS = ("train", "val", "test")
# What a prepared dataset's directory holds; --force replaces these and nothing else.
DATASET_FILES = (*(f"{split}.parquet" for split in SPLITS), "stats.json")

# The feature sets of Baldi et al.: the 21 low-level, the 7 high-level, or all 28.
FEATURE_SETS = {"low": LOW_LEVEL, "high": HIGH_LEVEL, "all": ALL_FEATURES}


def feature_columns(feature_set: str) -> list[str]:
    """Column names of a feature set: 'low' (21), 'high' (7) or 'all' (28)."""
    try:
        return FEATURE_SETS[feature_set]
    except KeyError:
        raise UsageError(
            f"unknown feature set {feature_set!r}: choose one of {', '.join(FEATURE_SETS)}"
        ) from None
