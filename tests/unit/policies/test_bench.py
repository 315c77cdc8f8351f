from __future__ import annotations

import random

from policies.bench import generated_contacts, generated_policy, run_policy_bench
from policies.engine import compile_policy, evaluate
from policies.loader import document_from_data
from policies.validate import validate


def test_generated_policy_is_valid_and_matches_all_over_the_list() -> None:
    rng = random.Random(5)
    data = generated_policy(rng, 200)
    assert validate(data).ok
    policy = compile_policy(document_from_data(data), 1)
    matched = {evaluate(policy, c, 1_779_436_800.0).rule_index for c in generated_contacts(rng, 300)}
    assert len(policy.rules) == 200
    assert len(matched) > 20 and max(matched) > 50


def test_bench_returns_numbers_only() -> None:
    result = run_policy_bench(0.05)
    assert set(result) >= {"policy_evals_per_s", "policy_evals_per_s_default"}
    assert result["policy_evals_per_s"] > 0 and result["policy_evals_per_s_default"] > 0
    assert result["policy_rules"] == 200
