"""Every Channels group name, in one scheme: `<feature>.<scope>.<id>`, scope `project` (every page of
one project that shows that feature) or the object a single page follows (`run`). Publishers and
consumers name a group only through these functions (each feature's events.py re-exports the ones
it owns, beside its message schema), so a group's audience is decided in one place: the role that
may join each group is the consumer's `needed_role`, noted here.

| group                        | joined by (role)                 | carries                              |
| annotation.project.<id>      | annotation pages (annotator)     | queue counters                       |
| judging.project.<id>         | judge page (researcher)          | judge-job progress and error text    |
| generation.project.<id>      | generation pages (researcher)    | generation-job progress              |
| training.project.<id>        | run lists (researcher)           | run status rows                      |
| training.run.<id>            | one run's page (researcher)      | points, log, status, guardrail, evals|
| evaluation.project.<id>      | evaluation pages (researcher)    | evaluations, loop rounds, leaderboard |
"""


def annotation_project(project_id: int) -> str:
    return f"annotation.project.{int(project_id)}"


def judging_project(project_id: int) -> str:
    return f"judging.project.{int(project_id)}"


def generation_project(project_id: int) -> str:
    return f"generation.project.{int(project_id)}"


def training_project(project_id: int) -> str:
    return f"training.project.{int(project_id)}"


def training_run(run_id: int) -> str:
    return f"training.run.{int(run_id)}"


def evaluation_project(project_id: int) -> str:
    return f"evaluation.project.{int(project_id)}"
