"""The words and pages a person reads: stop reports and escalations
(:mod:`.reports`) and why a campaign stopped (:mod:`.stop_reasons`), the final
evaluation's report (:mod:`.final_report`), the summary in ``runs/summary.md``
(:mod:`.summary`) and its chart (:mod:`.chart`), the ``mlr status`` views
(:mod:`.views`), a result's provenance (:mod:`.provenance`) and the small
formatters they share (:mod:`.words`).

Guarantees: pure functions from the program, the folded state and the
budget to Markdown or plain text; job-controlled and LLM text is shown
through :mod:`mlr_action.core.markup` and redacted, never rendered; the same
inputs give the same text (the time is passed in).

May import: the core, the job contract (a campaign's id) and this package;
never an adapter, the shell or a command.
"""
