"""The answer a report opens with: the best composite against the portfolio's stock Transformer, and what helped."""

from __future__ import annotations

import pandas as pd
import pytest

from nas.results.answer import MIN_TRIALS, answer, helped_or_hurt
from nas.results.report import write_report
from nas.search.portfolio import PORTFOLIO_ATTR
from tests.support.studies import arch, hand_study

STOCK = {PORTFOLIO_ATTR: "transformer-32x2"}


def rows():
    return [
        {"values": [0.95], "arch": arch("parallel", "dot", "linear"), "test": 0.93},  # the best: a composite
        {"values": [0.94], "arch": arch("single", "dot"), "test": 0.92},  # dot, but not from the portfolio
        {"values": [0.93], "arch": arch("single", "cosine"), **STOCK, "test": 0.91},  # portfolio, not dot
        {"values": [0.90], "arch": arch("single", "dot"), **STOCK, "test": 0.90,
         "result": {"cv": {"folds": 5, "std": 0.02, "values": [0.9] * 5}}},  # the stock Transformer
    ]


def test_the_stock_transformer_is_the_best_portfolio_trial_of_plain_dot_attention():
    found = answer(hand_study(rows()))
    assert found.best.trial == 0 and found.stock.trial == 3
    assert found.margin == pytest.approx(5.0)
    assert found.stock.scored_by == "5-fold CV" and found.stock.val_std == 0.02
    sentence = found.sentence()
    assert "5.0 points above the portfolio's stock Transformer (trial 3, 0.900)" in sentence
    assert "best composite 0.930" in sentence and "stock Transformer (portfolio) 0.900" in sentence


def test_without_a_portfolio_trial_the_answer_says_so():
    found = answer(hand_study([rows()[0], rows()[1]]))
    assert found.stock is None and found.margin is None
    assert "holds no complete stock-Transformer portfolio trial" in found.sentence()


def test_the_exported_final_model_and_minirocket_stand_beside_them():
    study = hand_study(rows())
    exported = {"study": study.study_name, "trial": 0, "summary": "s", "test": 0.94, "test_std": 0.01}
    found = answer(study, exported, {"model": "MiniRocket (aeon 1.6.0)", "test": 0.97})
    table = found.table()
    assert list(table["model"]) == ["best composite", "stock Transformer (portfolio)", "final model (exported)",
                                    "MiniRocket (aeon 1.6.0), same split"]
    assert "final model (exported) 0.940 ± 0.010" in found.sentence()
    other = answer(study, {**exported, "study": "another"})
    assert other.final is None  # an export of another study is not this study's final model


def test_an_exported_ensemble_gives_its_own_test_and_the_seeds_alone_beside_it():
    study = hand_study(rows())
    exported = {"study": study.study_name, "trial": 0, "summary": "s", "test": 0.95, "test_std": 0.01, "members": 3,
                "final": {"test_mean": 0.94, "test_std": 0.01}}
    found = answer(study, exported)
    assert "final model (exported: ensemble of 3 seeds) 0.950." in found.sentence()  # no spread: one model
    row = found.table().iloc[2]
    assert row["scored by"] == "retrained on train + validation; one seed alone 0.940 ± 0.010"


def test_a_verdict_needs_enough_trials_and_a_clear_difference():
    def table(n: int, gap: float) -> pd.DataFrame:
        good = [{"trial": i, "state": "COMPLETE", "val": 0.9 + gap + 0.001 * (i % 3), "topology": "parallel",
                 "types": ["dot", "linear"]} for i in range(n)]
        plain = [{"trial": n + i, "state": "COMPLETE", "val": 0.9 + 0.001 * (i % 3), "topology": "single",
                  "types": ["dot"]} for i in range(n)]
        return pd.DataFrame(good + plain)

    few = helped_or_hurt(table(MIN_TRIALS - 1, 0.05), maximize=True).set_index(["view", "family"])
    assert few.loc[("topology", "parallel"), "verdict"].startswith("too few trials")
    clear = helped_or_hurt(table(MIN_TRIALS + 1, 0.05), maximize=True).set_index(["view", "family"])
    assert clear.loc[("topology", "parallel"), "verdict"] == "helped"
    assert clear.loc[("topology", "single"), "verdict"] == "hurt"
    assert clear.loc[("attention", "linear"), "vs_others"] == pytest.approx(0.05)
    noise = helped_or_hurt(table(MIN_TRIALS + 1, 0.0005), maximize=True).set_index(["view", "family"])
    assert noise.loc[("topology", "parallel"), "verdict"].startswith("no clear effect")


def test_the_report_opens_with_the_answer(tmp_path):
    study = hand_study(rows())
    report = write_report(study, tmp_path, baselines=False)
    text = (tmp_path / "report.md").read_text()
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections[0] == "## Answer" and "5.0 points above" in text.split("## Answer")[1].split("## ")[0]
    assert "### What helped or hurt" in text and report.out_dir == tmp_path
