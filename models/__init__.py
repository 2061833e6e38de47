"""matchwijs models: ranker, baselines, eligibility rules, assignment, explanations, MLflow glue."""
