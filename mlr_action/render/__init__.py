"""The words and pages: reports, the summary, the views a person reads."""
