"""The 114 smear parameters of Kimura et al. 2019 from per-cell predictions (see ``smear``)."""
from featurize.smear import SmearFeaturizer, SmearFeatures, featurize_smear, parameter_names

__all__ = ["SmearFeaturizer", "SmearFeatures", "featurize_smear", "parameter_names"]
