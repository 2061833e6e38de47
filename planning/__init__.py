"""Meeting rules: who may be placed (eligibility, priority policy) and the one-to-one plan (assignment)."""
