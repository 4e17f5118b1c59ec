"""Training one model on one task: the loop, its checkpoints, and the device it runs on.

It knows models and data, and nothing of Optuna: a search drives it through hooks
(``on_epoch`` to report and prune, ``on_checkpoint`` to save for a retry).
"""
