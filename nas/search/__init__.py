"""The search: a space of candidates, Optuna studies on stock storages, the objective that trains each
candidate, and the workers that share one study.

``run_search(SearchConfig(...))`` is the entry point; the scripts call it through ``nas.cli``.
"""
