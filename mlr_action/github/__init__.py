"""Everything GitHub: git, the forge, the pull request check and the action.

Adapters (below the shell): :mod:`.gitrepo` reads a repository with the git
CLI (what it may read and write under ``runs/`` in :mod:`.gitruns`);
:mod:`.gitsync` commits and pushes ``runs/`` as the bot;
:mod:`.catchup` tells a run queued behind the bot's push that it may go on;
:mod:`.ghenv` is the runner's environment and log commands; the forge
(:mod:`.forge` over PyGithub, with :mod:`.forge_controls`,
:mod:`.forge_reports`, :mod:`.api`, :mod:`.api_errors`, :mod:`.dashboard`,
:mod:`.controls`, :mod:`.history`, :mod:`.messages`, :mod:`.onboarding`)
posts the dashboard, reports and onboarding and reads the controls;
:mod:`.pr_comment` is the pull request check's comment (its body in
:mod:`.pr_comment_body`).

Entry points (on top of everything): :mod:`.action` is
``python -m mlr_action.github.action`` as action.yml runs it;
:mod:`.inputs` reads and checks its inputs; :mod:`.action_step` and
:mod:`.action_validate` run the ``step`` and ``validate`` commands.

Guarantees: only paths under ``runs/`` are ever committed, as the bot;
tokens are masked before anything is logged; issue comments, labels and
pull request text are data, never instructions (DESIGN.md section 9).

May import: the adapters may import the core, the job contract and the
words; the entry points may import anything, and nothing imports them.
"""
