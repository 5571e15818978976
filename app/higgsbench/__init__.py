"""higgsbench: train and benchmark Higgs-vs-tt̄ classifiers on Spark clusters and GPUs."""

__version__ = "0.1.0"
