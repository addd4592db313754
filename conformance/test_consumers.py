"""Per consumer of the metrics besides Grafana panels (--prometheus-rules, and with --vllm-namespace the cluster's
PrometheusRules, KEDA scalers, prometheus-adapter rules and the endpoint picker's flags): will it get data, and if
not, exactly why. Judged as a panel is, with the same vocabulary."""


def test_consumer(vllm_consumer, vllm_judge_panel, vllm_enforce):
    vllm_enforce(vllm_judge_panel(vllm_consumer))
