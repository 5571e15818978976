"""The UCI HIGGS columns and the feature sets of Baldi, Sadowski and Whiteson (2014).

The file has no header: column 0 is the label (1 = signal, 0 = background), then 21
low-level features (what the detector measures: lepton, missing energy, four jets with
b-tags) and 7 high-level features (invariant masses physicists derive from them).
"""

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

FEATURE_SETS = {"low": LOW_LEVEL, "high": HIGH_LEVEL, "all": ALL_FEATURES}


def feature_columns(feature_set: str) -> list[str]:
    """Column names of a feature set: 'low' (21), 'high' (7) or 'all' (28)."""
    try:
        return FEATURE_SETS[feature_set]
    except KeyError:
        raise ValueError(
            f"unknown feature set {feature_set!r}: choose one of {', '.join(FEATURE_SETS)}"
        ) from None
