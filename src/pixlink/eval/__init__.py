"""Benchmarks: dataset loaders (:mod:`pixlink.eval.datasets`), metrics
(:mod:`pixlink.eval.metrics`) and the evaluation runner (:mod:`pixlink.eval.runner`)."""
