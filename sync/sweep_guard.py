"""When may the submissions a sweep found gone be marked deleted?

Only submissions a listing left out are ever candidates (a count never deletes anything). Then, as the
sweep has always done: an answer that lists none of the stored submissions is never read as "all deleted"
(unless the run allows deleting everything and the server's own counter says 0 too), and more than
`max_delete_fraction` of the stored submissions gone stops the run, at any size.
"""

from __future__ import annotations

from common.errors import KoboError
from sync.sweep_source import SweepSource

ADVICE = ("nothing was marked deleted. If they really were deleted on the server, run again allowing it "
          "(--max-delete-fraction 1)")


def check_deletions(source: SweepSource, gone: int, stored: int, seen: int, max_delete_fraction: float) -> None:
    """Raise KoboError when `gone` of `stored` submissions, with `seen` listed by the server, must not be
    marked deleted."""
    if not gone or not stored:
        return
    if seen == 0:
        counted = source.total_on_server()
        if max_delete_fraction < 1 or counted != 0:
            raise KoboError(f"the sweep of {source.name} found none of the {stored:,} stored submissions on "
                            f"{source.server_url}, which still counts {counted if counted is not None else 'some'}; "
                            "an empty answer is not read as 'all deleted'; " + ADVICE.replace(
                                "run again allowing it (--max-delete-fraction 1)",
                                "the asset must also count 0 submissions, and the run must allow it "
                                "(--max-delete-fraction 1)"))
    if gone > max_delete_fraction * stored:
        raise KoboError(f"the sweep of {source.name} found {gone:,} of {stored:,} stored submissions missing on "
                        f"{source.server_url}; " + ADVICE)
