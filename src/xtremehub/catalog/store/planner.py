"""PostgreSQL planner settings for one search transaction: plans chosen by what the counts showed.

PostgreSQL's cost model misjudges full-text search in two ways that cost tens of milliseconds
at 100,000 datasets (EXPLAIN ANALYZE in bench/README.md, "Catalog: search and registration"):

* testing ``@@`` on a row's vector is far dearer than it assumes, so for a word that matches
  10-20% of the catalog it reads and tests every vector (a sequential scan, ~45 ms) instead of
  visiting only the matching rows the GIN index names (a bitmap scan, ~10 ms);
* a page of a broad match is cheapest walking the ``modified`` index newest first and stopping
  after the page (<1 ms), a page of a narrow one by sorting its few matches; the planner
  guesses the match count, but search has counted it already (the total, exact or capped, or
  the cached counts) and decides as SQLite's search does (:func:`walks_modified`).

Settings are ``SET LOCAL`` (this transaction only, the pooled connection gets them back at its
end), one statement per stage, and only for queries with text: a filter-only or empty search
keeps the planner's own choices and costs no extra round trip. Each stage also sets
``plan_cache_mode = force_custom_plan``: psycopg prepares a statement run 5 times, and a
generic plan (the same for every word) would ignore the word's selectivity.

Example:
    >>> walks_modified(17_000, 20, 100_000), walks_modified(300, 20, 100_000)
    (True, False)
    >>> setting_sql("walk").count("'off'"), setting_sql("walk").startswith("SELECT set_config('plan_cache_mode'")
    (2, True)
"""

from __future__ import annotations

from typing import Literal

__all__ = ["Stage", "setting_sql", "walks_modified"]

#: What a search statement needs: counting text matches, its page walking ``modified``, its
#: page sorting the matches.
Stage = Literal["count", "walk", "sort"]

_SETTINGS: dict[Stage, tuple[tuple[str, str], ...]] = {
    # the GIN index names the matches: visit only those rows (bitmap), never test every vector
    "count": (("enable_seqscan", "off"), ("enable_bitmapscan", "on"), ("enable_indexscan", "on")),
    # newest first along the modified index, testing each row, until the page is full
    "walk": (("enable_seqscan", "off"), ("enable_bitmapscan", "off"), ("enable_indexscan", "on")),
    # the few matches from the GIN index (bitmap), then sorted
    "sort": (("enable_seqscan", "off"), ("enable_bitmapscan", "on"), ("enable_indexscan", "off")),
}


def setting_sql(stage: Stage) -> str:
    """One statement setting the planner for ``stage`` until the transaction ends."""
    settings = (("plan_cache_mode", "force_custom_plan"), *_SETTINGS[stage])  # planned for this word
    return "SELECT " + ", ".join(f"set_config('{name}', '{value}', true)" for name, value in settings)


def walks_modified(total: int, last: int, size: int) -> bool:
    """Whether the page ending at ``last`` (offset + limit) of ``total`` matches among ``size``
    datasets is cheaper walking the ``modified`` index (about ``last * size / total`` rows
    tested) than sorting every match (``total`` rows read): ``total**2 >= last * size``."""
    return total * total >= last * size
