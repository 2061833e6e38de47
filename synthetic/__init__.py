"""The synthetic Amsterdam: a contract-valid dataset with a written-down ground truth, for demos, tests and benchmarks."""
