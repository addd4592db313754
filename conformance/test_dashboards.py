"""Per Grafana panel (--grafana-dashboard): will it show data, and if not, exactly why."""


def test_panel(vllm_panel, vllm_judge_panel, vllm_enforce):
    vllm_enforce(vllm_judge_panel(vllm_panel))
