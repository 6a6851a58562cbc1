"""``bench``: the issue's JSON schema, the generated report, and its computed summary."""
import json

from dml_core.bench import report, run as bench
from dml_core.core.store import ArtifactStore


def test_bench_writes_the_json_schema_report_and_plots(built_home, tmp_path, one_torch_thread):
    out = tmp_path / "BENCHMARKS.json"
    markdown = tmp_path / "BENCHMARKS.md"
    result = bench.run_bench("tiny_ft", out, store=ArtifactStore(built_home), markdown_path=markdown, speed=False)
    stored = json.loads(out.read_text())
    assert stored["profile"] == "tiny_ft" and set(stored["tasks"]) == {"pose", "layout", "caption"}
    pose = stored["tasks"]["pose"]
    for task in ("pose", "layout", "caption"):
        methods = stored["tasks"][task]["methods"]
        assert {"imagenet", "contrastive", "binary_triplet", "dense_triplet", "log_ratio", "rank_n_contrast",
                "binary_triplet_ft", "log_ratio_ft"} <= set(methods)
        assert [methods[m]["kind"] for m in ("imagenet", "log_ratio", "log_ratio_ft")] == ["pretrained", "head", "top_blocks"]
        for method, summary in methods.items():
            for key in ("ndcg@10", "ndcg@100", "mld@10", "gap_closed@10", "ndcg_norm@10", "spearman", "seeds", "ndcg@10_std"):
                assert key in summary, (task, method, key)
        reference = stored["tasks"][task]["reference"]
        assert reference["random"]["gap_closed@10"] == 0.0 and reference["oracle"]["gap_closed@10"] == 1.0
        assert reference["oracle"]["mld@10"] < reference["random"]["mld@10"]
    assert set(pose["dim_ablation"]) == {"binary_triplet", "log_ratio"} and set(pose["dim_ablation"]["log_ratio"]) == {"16", "128"}
    model_meta = ArtifactStore(built_home).manifest("pose", "models", "log_ratio-d128-s0")["meta"]["metrics"]
    assert pose["methods"]["log_ratio"]["ndcg@10"] == round(model_meta["ndcg@10"], 4)  # computed, from the artifacts
    timing = stored["timing"]
    assert timing["query_ms_p50"] > 0 and timing["query_ms_p95"] >= timing["query_ms_p50"] and timing["build_s"] > 0
    assert stored["tuning"] == {} == result["tuning"]  # the tiny profile trains with the defaults

    text = markdown.read_text()
    assert [line for line in text.splitlines() if line.startswith("## ")][:4] == ["## Summary", "## pose", "## layout", "## caption"]
    assert "| method | d=16 | d=128 |" in text
    assert "| log_ratio_ft | fine-tuned backbone |" in text and "pose fine-tuned backbone" in text
    assert "| *random* |" in text and "| *oracle* |" in text and "gap closed@10" in text
    for name in ("curves_pose.png", "curves_layout.png", "curves_caption.png", "dim_ablation.png"):
        assert (tmp_path / "docs" / "bench" / name).stat().st_size > 5_000


def test_summary_names_a_tie_when_the_gap_is_within_the_seed_spread():
    tied = {"a": {"ndcg@10": 0.800, "ndcg@10_std": 0.01}, "b": {"ndcg@10": 0.790, "ndcg@10_std": 0.01}}
    assert report._best(tied, "ndcg@10") == "a ≈ b"
    clear = {"a": {"ndcg@10": 0.800, "ndcg@10_std": 0.001}, "b": {"ndcg@10": 0.790, "ndcg@10_std": 0.001}}
    assert report._best(clear, "ndcg@10") == "a"
    lower_is_better = {"a": {"mld@10": 0.30, "mld@10_std": 0.0}, "b": {"mld@10": 0.20, "mld@10_std": 0.0}}
    assert report._best(lower_is_better, "mld@10") == "b"
    assert report.dimensions({"m": {"128": {}, "16": {}, "32": {}}}) == [16, 32, 128]


def test_first_run_lines_give_the_quick_build_alone_and_on_a_shared_cpu(tmp_path):
    assert report._first_run_lines(tmp_path / "none.json", tmp_path / "none2.json") == []
    quick, shared = tmp_path / "quick.json", tmp_path / "shared.json"
    quick.write_text(json.dumps({"generated": "2026-12-02", "timing": {"build_s": 281.2, "build_stages_s": {
        "data": 41.8, "features": 43.5, "models": 195.5, "search": 0.0}}}))
    shared.write_text(json.dumps({"build_s": 400.4, "competitor": "a busy loop",
                                  "stages": {"data": {"seconds": 60.0}, "models": {"seconds": 300.0}}}))
    alone, busy = report._first_run_lines(quick, shared)
    assert "281 s (data 42 s, features 44 s, models 196 s)" in alone
    assert "400 s (data 60 s, models 300 s)" in busy and "a busy loop" in busy and "alone" not in busy
    shared.write_text(json.dumps({"build_s": 400.4, "stages": {"models": {"seconds": 300.0}},
                                  "alone": {"build_s": 200.2, "stages": {"models": {"seconds": 150.0}}}}))
    busy = report._first_run_lines(quick, shared)[1]
    assert "400 s (models 300 s), against 200 s (models 150 s) alone" in busy and "2.00× slower" in busy


def test_ceiling_section_is_rewritten_in_place(tmp_path):
    from dml_core.bench.ceiling import KEYS

    markdown = tmp_path / "BENCHMARKS.md"
    markdown.write_text("# Benchmarks\n\n## Speed\n\nfast\n")
    row = {"knob": "embedder", "setting": "head conv + head trained, 20 steps", "method": "log_ratio_ft",
           **dict.fromkeys(KEYS, 0.5), "seconds": 3.0}
    scale = {"random": dict.fromkeys(KEYS, 0.0), "oracle": dict.fromkeys(KEYS, 1.0)}
    quick = {"tasks": {"pose": {"profile": "quick", "train": 1500, "rows": [row], **scale}}}
    (tmp_path / "docs" / "bench").mkdir(parents=True)
    (tmp_path / report.QUICK_CEILING_JSON).write_text(json.dumps(quick))
    report.write_ceiling_section(markdown)
    report.write_ceiling_section(markdown)  # replaces its own section, once
    text = markdown.read_text()
    assert text.count("## Ceiling") == 1 and text.index("## Ceiling") < text.index("## Speed") and "fast" in text
    assert "### pose (quick profile, 1,500 training images)" in text and "| head conv + head trained, 20 steps |" in text
    assert "- quick profile (seed 0): pose: fine-tuned backbone (1 top block + head conv)" in text


def test_ceiling_refuses_a_markdown_it_would_not_render(tmp_path, capsys):
    from dml_core import cli

    markdown = tmp_path / "BENCHMARKS.md"
    markdown.write_text("# Benchmarks\n")
    code = cli.main(["ceiling", "--json", str(tmp_path / "elsewhere.json"), "--markdown", str(markdown)])
    assert code == 1 and "nothing run" in capsys.readouterr().err
    assert markdown.read_text() == "# Benchmarks\n" and not (tmp_path / "elsewhere.json").exists()
