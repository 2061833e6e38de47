"""matchwijs reports: the meeting sheet, the audit report and its figures."""
