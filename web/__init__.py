"""The meeting app (Django): the weekly meeting sees the suggestions, decides, and records why.

Views call the libraries (`reports.suggestions.meeting_outputs`, `reports.meeting.contribution_svg`);
the decision log is an append-only table that the database itself guards (see migrations).
"""
