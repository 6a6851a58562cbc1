"""Importing data sets as tasks (``python -m dml_core import``), end to end.

One module-scoped home holds four imported data sets, one per format, each written here from
the procedural generators: pose figures with their joints as MPII JSON, layout renders with
LSUN ``.mat`` maps, caption scenes with a COCO captions JSON, and discs whose radius, hue and
position are a CSV's label columns. All four are built with the tiny profile once; the tests
then query, evaluate, open the pages, and try hostile and bad input.
"""
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import io as sio
from streamlit.testing.v1 import AppTest

from dml_core import cli
from dml_core.core.store import ArtifactStore
from dml_core.data.importer import assign_splits, import_dataset
from dml_core.data.splits import load_split
from dml_core.data.tasks import get_task, task_names
from dml_core.data.tasks.imported import SOURCE, NoGenerator, standardised_distance
from dml_core.pipeline.plan import model_plan
from dml_core.pipeline.profiles import get_profile
from dml_core.pipeline.stages import build_data, run_build
from dml_core.serve.catalog import load_catalog
from scripts.make_disc_dataset import LABEL_COLUMNS, write_disc_dataset

ROOT = Path(__file__).resolve().parents[1]
N_IMAGES = 80  # 0.6 / 0.3 / 0.1 of it leaves every split above MIN_SPLIT
FRACTIONS = (0.6, 0.3, 0.1)
SIZE = 128
NAMES = {"folder": "discs", "mpii": "mpii_poses", "lsun": "lsun_rooms", "coco": "coco_scenes"}
FOLDER_TITLE = "Discs: radius, hue, position"


# ------------------------------------------------------------------------- data sets
def write_mpii(root: Path, n: int) -> np.ndarray:
    """Pose figures as MPII JSON whose crop is the whole image, so the loaded label of entry k
    equals the generator's label of image k; image 0 also gets a second person entry."""
    data = get_task("pose").generate(n, seed=11, size=SIZE)
    (root / "annot").mkdir(parents=True)
    (root / "images").mkdir()
    scale = SIZE / (200 * 1.25)  # crop side = 200 * scale * 1.25 = the image
    entries = []
    for k in range(n):
        name = f"{k:09d}.png"
        Image.fromarray(data.images[k]).save(root / "images" / name)
        joints = data.labels[k].astype(np.float64) * SIZE - 0.5 + 1  # pixel centres, MATLAB 1-based
        entries.append({"image": name, "joints": joints.tolist(), "joints_vis": [1] * 16,
                        "center": [SIZE / 2 + 1, SIZE / 2 - 15 * scale + 1], "scale": scale})
    entries.append(dict(entries[0]))
    (root / "annot" / "train.json").write_text(json.dumps(entries))
    return data.labels


def write_lsun(root: Path, n: int, png: bool = False) -> np.ndarray:
    """Layout renders with their layout maps at image resolution (semantic values 1..5)."""
    data = get_task("layout").generate(n, seed=12, size=SIZE, label_size=SIZE)
    (root / "images").mkdir(parents=True)
    seg = root / ("layout_seg_images" if png else "layout_seg")
    seg.mkdir()
    for k in range(n):
        Image.fromarray(data.images[k]).save(root / "images" / f"room_{k:03d}.png")
        if png:
            Image.fromarray((data.labels[k] + 1).astype(np.uint8)).save(seg / f"room_{k:03d}.png")
        else:
            sio.savemat(str(seg / f"room_{k:03d}.mat"), {"layout": data.labels[k].astype(np.float64) + 1})
    return data.labels


def write_coco(root: Path, n: int) -> list[list[str]]:
    """Caption scenes as COCO: val2017/ images and annotations/captions_val2017.json; one more
    image has no caption, and every third has fewer captions than the rest (COCO has 5 to 7)."""
    data = get_task("caption").generate(n, seed=13, size=SIZE)
    data.meta["captions"] = [caps[:2] if k % 3 == 0 else caps for k, caps in enumerate(data.meta["captions"])]
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    images, annotations = [], []
    for k in range(n + 1):
        name = f"{k:012d}.jpg"
        Image.fromarray(data.images[k % n]).save(root / "val2017" / name, quality=92)
        images.append({"id": 500 + k, "file_name": name})
        if k < n:
            annotations += [{"image_id": 500 + k, "id": 10 * k + j, "caption": c} for j, c in enumerate(data.meta["captions"][k])]
    (root / "annotations" / "captions_val2017.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    return data.meta["captions"]


@pytest.fixture(scope="module")
def imported_home(tmp_path_factory):
    """A DML_HOME with one data set of each format imported and built with the tiny profile."""
    root = tmp_path_factory.mktemp("import_sources")
    home = tmp_path_factory.mktemp("import_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DML_HOME", str(home))
        patch.setenv("DML_TEXT_BACKEND", "lexical")  # fast and exact; MiniLM is tested elsewhere
        sources = {
            "mpii": write_mpii(root / "mpii", N_IMAGES),
            "lsun": write_lsun(root / "lsun", N_IMAGES),
            "coco": write_coco(root / "coco", N_IMAGES),
            "folder": write_disc_dataset(root / "discs", N_IMAGES, seed=3),
        }
        reports = {}
        store = ArtifactStore(home)
        for fmt, name in NAMES.items():
            paths = dict(images=sources[fmt][0], labels=sources[fmt][1]) if fmt == "folder" else dict(root=root / fmt)
            reports[fmt] = import_dataset(name, fmt, fractions=FRACTIONS, seed=1, store=store, progress=False,
                                          title=FOLDER_TITLE if fmt == "folder" else None, **paths)
        run_build("tiny", tasks=tuple(NAMES.values()), store=store, progress=False, workers=1)
        yield {"home": home, "root": root, "sources": sources, "reports": reports}


@pytest.fixture
def home_env(imported_home, monkeypatch):
    monkeypatch.setenv("DML_HOME", str(imported_home["home"]))
    monkeypatch.setenv("DML_TEXT_BACKEND", "lexical")
    return imported_home


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tree(path: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``path`` with its size and modification time."""
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(path.rglob("*")) if p.is_file() and not p.is_symlink()}


# ----------------------------------------------------------------------------- tasks
def test_imported_tasks_are_tasks_next_to_the_built_in_ones(home_env):
    names = task_names()
    assert names[:3] == ("pose", "layout", "caption")
    assert sorted(names[3:]) == sorted(NAMES.values())
    for fmt, name in NAMES.items():
        task = get_task(name)
        assert task.name == name and task.format == fmt and not task.has_generator
        assert task.title and task.description and task.attributes
        with pytest.raises(NoGenerator, match="no procedural generator"):
            task.generate(2, seed=0)
    assert get_task("pose").has_generator
    with pytest.raises(ValueError, match="unknown task 'nope'.*discs"):
        get_task("nope")


def test_imports_keep_the_labels_of_their_sources(home_env):
    store, sources = ArtifactStore(home_env["home"]), home_env["sources"]
    reports = home_env["reports"]
    # mpii: entry k is image k, cropped as a whole, so the label is the generator's
    for split in ("train", "gallery", "query"):
        data = load_split(store, NAMES["mpii"], split, kind=SOURCE)
        rows = [int(name.split(".")[0]) for name in data.meta["image"]]
        np.testing.assert_allclose(data.labels, sources["mpii"][rows], atol=1e-5)
    # ... and the second person of image 0 landed in the same split as the first
    counts = {s: load_split(store, NAMES["mpii"], s, kind=SOURCE).meta["image"].count("000000000.png") for s in ("train", "gallery", "query")}
    assert sorted(counts.values()) == [0, 0, 2]
    # lsun: 32x32 cells sampled from the full-resolution map agree with the generator's map
    data = load_split(store, NAMES["lsun"], "train", kind=SOURCE)
    rows = [int(name.split("_")[1]) for name in data.meta["name"]]
    cells = (np.arange(32) * SIZE // 32 + SIZE // 64)
    expected = sources["lsun"][rows][:, cells][:, :, cells]
    assert np.mean(data.labels == expected) == 1.0
    # coco: the captions, in order; the image without a caption was reported
    data = load_split(store, NAMES["coco"], "gallery", kind=SOURCE)
    for image_id, captions in zip(data.meta["image_id"], data.meta["captions"]):
        assert captions == sources["coco"][image_id - 500]
    assert [(s.where, s.reason) for s in reports["coco"].skipped] == [(f"{N_IMAGES:012d}.jpg", "no caption")]
    # folder: label columns of the CSV, in CSV column order; background kept as an attribute
    task = get_task(NAMES["folder"])
    assert task.label_columns == LABEL_COLUMNS and "background" in task.attributes
    csv_rows = {line.split(",")[0]: line.strip().split(",") for line in sources["folder"][1].read_text().splitlines()[1:]}
    data = load_split(store, NAMES["folder"], "query", kind=SOURCE)
    for file, label in zip(data.meta["file"], data.labels):
        np.testing.assert_allclose(label, [float(v) for v in csv_rows[file][1:5]], rtol=1e-6)
    assert {reports[f].counts["query"] for f in ("folder", "lsun", "coco")} == {round(0.1 * N_IMAGES)}
    assert reports["mpii"].counts["query"] in (8, 9)  # 81 people in 80 photos, dealt out by photo


def test_folder_label_distance_formulas():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 3)) * [1, 10, 100], rng.normal(size=(5, 3)) * [1, 10, 100]
    mean, scale = np.array([0.5, -1.0, 3.0]), np.array([1.0, 10.0, 100.0])
    za, zb = (a - mean) / scale, (b - mean) / scale
    diff = za[:, None] - zb[None]
    np.testing.assert_allclose(standardised_distance(a, b, mean, scale, "euclidean"), np.sqrt((diff**2).sum(-1)), rtol=1e-5)
    np.testing.assert_allclose(standardised_distance(a, b, mean, scale, "l1"), np.abs(diff).sum(-1), rtol=1e-5)
    cosine = 1 - (za @ zb.T) / np.outer(np.linalg.norm(za, axis=1), np.linalg.norm(zb, axis=1))
    np.testing.assert_allclose(standardised_distance(a, b, mean, scale, "cosine"), cosine, rtol=1e-5, atol=1e-6)
    for kind in ("euclidean", "l1", "cosine"):
        square = standardised_distance(a, a, mean, scale, kind)
        assert np.all(np.diag(square) == 0) and np.allclose(square, square.T) and square.min() >= 0
    at_mean = standardised_distance(mean[None], np.vstack([mean, a[:2]]), mean, scale, "cosine")
    np.testing.assert_array_equal(at_mean, [[0.0, 1.0, 1.0]])


def test_splits_keep_groups_whole_and_follow_the_fractions():
    groups = [i // 3 for i in range(300)]  # 100 photos with 3 people each
    splits = assign_splits(groups, (0.7, 0.2, 0.1), seed=4)
    assert sorted(np.concatenate(list(splits.values())).tolist()) == list(range(300))
    where = {g: s for s, indices in splits.items() for g in {groups[i] for i in indices}}
    assert sum(len({groups[i] for i in idx}) for idx in splits.values()) == len(where) == 100
    assert abs(len(splits["query"]) - 30) <= 3 and abs(len(splits["gallery"]) - 60) <= 3
    again = assign_splits(groups, (0.7, 0.2, 0.1), seed=4)
    assert all(np.array_equal(splits[s], again[s]) for s in splits)
    assert not np.array_equal(assign_splits(groups, (0.7, 0.2, 0.1), seed=5)["query"], splits["query"])


# ------------------------------------------------------------------ build, query, evaluate
@pytest.mark.parametrize("fmt", list(NAMES))
def test_build_trains_the_method_set_then_query_and_evaluate(home_env, fmt, capsys, tmp_path):
    name, store = NAMES[fmt], ArtifactStore(home_env["home"])
    profile = get_profile("tiny")
    catalog = load_catalog(name, store)
    assert set(catalog.models) == {spec.id for spec in model_plan(profile, name)}
    counts = home_env["reports"][fmt].counts
    assert len(catalog.gallery) == min(profile.sizes["gallery"], counts["gallery"])
    assert len(catalog.queries) == min(profile.sizes["query"], counts["query"])
    np.testing.assert_allclose(catalog.label_dist, get_task(name).label_distance(catalog.queries.labels, catalog.gallery.labels),
                               rtol=1e-5, atol=1e-6)

    out = tmp_path / "metrics.json"
    code, stdout, _ = run_cli(capsys, "evaluate", "--task", name, "--json", out)
    assert code == 0 and "log_ratio-d128-s0" in stdout and "binary_triplet-d128-s0" in stdout
    rows = json.loads(out.read_text())["models"]
    for model_id, row in rows.items():
        stored = catalog.models[model_id].meta["metrics"]
        assert row["ndcg@10"] == pytest.approx(stored["ndcg@10"], abs=1e-4)
        assert 0 < row["ndcg@10"] <= 1

    # a gallery image as the query: every model finds the image itself first
    image = tmp_path / "query.png"
    Image.fromarray(np.asarray(catalog.gallery.images[5])).save(image)
    code, stdout, _ = run_cli(capsys, "query", "--task", name, "--image", image, "--k", 3, "--json")
    assert code == 0
    hits = json.loads(stdout)["models"]
    assert set(hits) == set(catalog.model_ids(main_only=True))
    for model_hits in hits.values():
        assert model_hits[0]["gallery_id"] == 5 and model_hits[0]["distance"] == pytest.approx(0, abs=1e-4)


def test_train_command_trains_on_an_imported_task(home_env, capsys):
    store = ArtifactStore(home_env["home"])
    try:
        code, out, err = run_cli(capsys, "train", "--task", NAMES["folder"], "--method", "log_ratio", "--dim", 16,
                                 "--steps", 3, "--device", "cpu")
        assert code == 0, err
        result = json.loads(out)
        assert result["model_id"] == "cli-log_ratio-d16-s0" and 0 < result["metrics"]["ndcg@10"] <= 1
        assert "cli-log_ratio-d16-s0" in load_catalog(NAMES["folder"], store).models
    finally:  # the other tests see the build's models only
        store.remove(NAMES["folder"], "models", "cli-log_ratio-d16-s0")


def test_preview_shows_an_imported_tasks_stored_images(home_env, capsys, tmp_path):
    out = tmp_path / "sheet.png"
    code, _, err = run_cli(capsys, "preview", "--task", NAMES["folder"], "--n", 4, "--out", out)
    assert code == 0, err
    sheet = np.asarray(Image.open(out))
    assert sheet.shape[1] > 2 * 256 and sheet.std() > 10


def test_replace_removes_what_was_built_from_the_earlier_import(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DML_HOME", str(tmp_path / "home"))
    images, labels = write_disc_dataset(tmp_path / "discs", 70, seed=9)
    args = ["import", "--task", "d", "--format", "folder", "--images", images, "--labels", labels, "--split", "0.6,0.3,0.1"]
    assert run_cli(capsys, *args)[0] == 0
    store = ArtifactStore(tmp_path / "home")
    build_data(store, get_profile("tiny"), ("d",))
    assert store.is_valid("d", "data", "gallery")
    code, _, err = run_cli(capsys, *args)
    _one_line_error(code, err, "error: a task named 'd' is already imported")
    code, out, _ = run_cli(capsys, *args, "--replace", "--seed", "2")
    assert code == 0 and "imported d (folder): 70 images" in out
    assert not store.path("d", "data").exists() and store.is_valid("d", SOURCE, "train")


# ----------------------------------------------------------------------- hostile input
def test_hostile_folder_imports_the_good_rows_and_names_each_bad_one(tmp_path, monkeypatch, capsys):
    source = tmp_path / "source"
    images, _ = write_disc_dataset(source, 70, seed=5)
    outside = tmp_path / "outside.png"
    Image.new("RGB", (64, 64), (255, 0, 255)).save(outside)
    (images / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    good = (images / "disc_00000.png").read_bytes()
    (images / "truncated.png").write_bytes(good[: len(good) // 2])
    (images / "link_out.png").symlink_to(outside)
    lines = (source / "labels.csv").read_text().splitlines()
    lines += [
        "garbage.png,10,0.5,0.5,0.5,noise",
        "truncated.png,10,0.5,0.5,0.5,noise",
        "disc_00001.png,,0.5,0.5,0.5,noise",            # blank label
        "disc_00002.png,big,0.5,0.5,0.5,noise",         # text label
        "../outside.png,10,0.5,0.5,0.5,noise",          # escapes the folder
        f"{outside},10,0.5,0.5,0.5,noise",              # absolute path
        "link_out.png,10,0.5,0.5,0.5,noise",            # a link out of the folder
        "disc_00003.png,11,0.5,0.5,0.5,noise",          # duplicate of an earlier row
        "missing.png,10,0.5,0.5,0.5,noise",
        "disc_00004.png,nan,0.5,0.5,0.5,noise",
    ]
    (source / "labels.csv").write_text("\n".join(lines) + "\n")
    before = tree(tmp_path)
    home = tmp_path / "home"
    monkeypatch.setenv("DML_HOME", str(home))
    code, out, err = run_cli(capsys, "import", "--task", "hostile", "--format", "folder", "--images", images,
                             "--labels", source / "labels.csv", "--split", "0.6,0.3,0.1")
    assert code == 0, err
    skipped = [line for line in out.splitlines() if line.startswith("skipped ")]
    first_bad = 72  # header + 70 good rows, then the appended ones
    reasons = {int(line.split()[2]): line for line in skipped}
    assert sorted(reasons) == list(range(first_bad, first_bad + 10))
    assert "unreadable image" in reasons[72] and "unreadable image" in reasons[73]
    assert "label 'radius' is blank" in reasons[74] and "'big', not a number" in reasons[75]
    for line in (76, 77, 78):
        assert "outside the image folder" in reasons[line]
    assert "duplicate of line 5" in reasons[79] and "no such file" in reasons[80] and "'nan', not a number" in reasons[81]
    assert out.strip().splitlines()[-1].startswith("imported hostile (folder): 70 images") and "skipped 10" in out
    # the good rows are all there; nothing was written outside the store, the source is untouched
    store = ArtifactStore(home)
    stored = [load_split(store, "hostile", s, kind=SOURCE) for s in ("train", "gallery", "query")]
    files = sorted(f for data in stored for f in data.meta["file"])
    assert files == sorted(f"disc_{i:05d}.png" for i in range(70))
    magenta = np.all(np.concatenate([d.images for d in stored]) == (255, 0, 255), axis=-1).mean(axis=(1, 2))
    assert magenta.max() < 0.5
    after = tree(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("home/")} == before
    assert json.loads((home / "hostile" / "task" / "skipped.json").read_text())[0]["where"].startswith("line 72")


def test_an_mpii_file_with_broken_entries_keeps_the_good_ones(tmp_path, monkeypatch):
    labels = write_mpii(tmp_path / "mpii", 70)
    path = tmp_path / "mpii" / "annot" / "train.json"
    entries = json.loads(path.read_text())
    entries[3]["joints_vis"] = [1] * 15 + [0]
    entries[4]["joints"] = entries[4]["joints"][:12]
    (tmp_path / "mpii" / "images" / entries[5]["image"]).write_bytes(b"broken")
    entries[6]["image"] = "gone.png"
    path.write_text(json.dumps(entries))
    monkeypatch.setenv("DML_HOME", str(tmp_path / "home"))
    seen = []
    report = import_dataset("m", "mpii", root=tmp_path / "mpii", fractions=FRACTIONS, progress=False, on_skip=seen.append)
    assert [s.where for s in seen] == ["entry 3 (000000003.png)", "entry 4", "entry 5 (000000005.png)", "entry 6 (gone.png)"]
    assert "joints 15 not annotated" in seen[0].reason and "12 joints, expected 16" in seen[1].reason
    assert "cannot read image" in seen[2].reason and "not found" in seen[3].reason
    assert sum(report.counts.values()) == 71 - 4
    assert len(labels) == 70


def test_lsun_png_maps_give_the_labels_of_mat_maps(home_env, tmp_path):
    write_lsun(tmp_path / "png", N_IMAGES, png=True)
    report = import_dataset("rooms_png", "lsun", root=tmp_path / "png", fractions=FRACTIONS, seed=1,
                            store=ArtifactStore(tmp_path / "home"), progress=False)
    png = load_split(ArtifactStore(tmp_path / "home"), "rooms_png", "train", kind=SOURCE)
    mat = load_split(ArtifactStore(home_env["home"]), NAMES["lsun"], "train", kind=SOURCE)
    assert report.counts == home_env["reports"]["lsun"].counts and png.meta["name"] == mat.meta["name"]
    np.testing.assert_array_equal(png.labels, mat.labels)


def _one_line_error(code: int, err: str, needle: str) -> None:
    """A non-zero exit and one ``error:`` line, last on stderr (after any progress bar)."""
    assert code != 0
    lines = err.replace("\r", "\n").strip().splitlines()
    assert lines[-1].startswith("error: ") and sum(line.startswith("error") for line in lines) == 1, err
    assert "Traceback" not in err and needle in lines[-1], err


def test_bad_input_gives_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    monkeypatch.setenv("DML_HOME", str(home))
    images, labels = write_disc_dataset(tmp_path / "discs", 30, seed=2)
    folder = ["--format", "folder", "--images", images]

    def attempt(*args):
        return run_cli(capsys, "import", "--task", "mine", *args)[::2]

    code, err = attempt("--format", "folder", "--images", tmp_path / "nowhere", "--labels", labels)
    _one_line_error(code, err, "no such image folder")
    (tmp_path / "nofile.csv").write_text("path,radius\ndisc_00000.png,3\n")
    _one_line_error(*attempt(*folder, "--labels", tmp_path / "nofile.csv"), "no 'file' column")
    (tmp_path / "text.csv").write_text("file,kind\ndisc_00000.png,round\n")
    _one_line_error(*attempt(*folder, "--labels", tmp_path / "text.csv"), "no numeric label column")
    _one_line_error(*attempt(*folder, "--labels", labels), "too few usable images: 30")
    _one_line_error(*attempt(*folder, "--labels", labels, "--split", "0.5,0.5"), "three positive fractions")
    code, err = run_cli(capsys, "import", "--task", "pose", *folder, "--labels", labels)[::2]
    _one_line_error(code, err, "clashes with the built-in task 'pose'")
    code, err = run_cli(capsys, "import", "--task", "../up", *folder, "--labels", labels)[::2]
    _one_line_error(code, err, "is not usable")
    _one_line_error(*attempt(*folder, "--labels", labels, "--label-columns", "radius", "--distance", "cosine"),
                    "cosine distance needs at least two label columns")
    _one_line_error(*attempt("--format", "lsun", "--root", tmp_path / "nowhere"), "no such file or folder")
    _one_line_error(*attempt("--format", "coco", "--root", tmp_path), "no COCO captions file")
    _one_line_error(*attempt("--format", "mpii", "--images", images, "--labels", labels), "takes --root")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty.csv").write_text("file,radius\nmissing.png,1\n")
    _one_line_error(*attempt("--format", "folder", "--images", tmp_path / "empty", "--labels", tmp_path / "empty.csv"),
                    "no usable row")
    assert not (home / "mine").exists() and not (home / "pose").exists()
    assert "mine" not in task_names()


# -------------------------------------------------------------------------------- pages
def page(name: str, **state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=180)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def test_the_task_picker_lists_imported_tasks_with_their_labels(home_env):
    at = page("compare", _keep_task=NAMES["folder"])
    assert not at.exception, [e.value for e in at.exception]
    picker = at.sidebar.selectbox(key="task")
    assert [o.removesuffix(" (not built)") for o in picker.options[:3]] == ["Human pose", "Room layout", "Image captions"]
    assert sorted(picker.options[3:]) == sorted([FOLDER_TITLE, *(n for n in NAMES.values() if n != "discs")])
    assert picker.value == NAMES["folder"]
    blurb = " ".join(c.value for c in at.sidebar.caption)
    assert "radius, hue, x, y" in blurb and "Imported data set" in blurb
    # a name that is not a known task (a stale or forged session value) is never used
    at = page("compare", _keep_task="../../etc")
    assert at.sidebar.selectbox(key="task").value in ("pose", "layout", "caption", *NAMES.values())


@pytest.mark.parametrize("fmt", ["folder", "mpii"])
def test_compare_runs_on_an_imported_task(home_env, fmt):
    name = NAMES[fmt]
    at = page("compare", _keep_task=name)
    assert not at.exception, [e.value for e in at.exception]
    catalog = load_catalog(name, ArtifactStore(home_env["home"]))
    query = at.selectbox(key=f"cmp_query_{name}").value
    models = at.multiselect(key=f"cmp_models_{name}").value
    assert models == ["binary_triplet-d128-s0", "log_ratio-d128-s0"]
    grids = [m.value for m in at.markdown if "bb-grid" in m.value]
    k = at.slider(key="cmp_k").value
    hits = catalog.hits_for_query(query, models, k)
    for grid, model_id in zip(grids, models):
        assert grid.count("<img") == k
        assert [int(i) for i in re.findall(r'title="gallery #(\d+)', grid)] == [h.gallery_index for h in hits[model_id]]
    if fmt == "folder":  # the label values, not a drawing, are what the query shows
        text = get_task(name).label_text(catalog.queries.labels[query])
        assert text.startswith("radius ") and "hue" in text
        facts = " ".join(m.value for m in at.markdown)
        assert "**radius**" in facts


@pytest.mark.parametrize("page_name", ["upload", "embedding_space", "benchmarks", "training_lab"])
def test_every_page_opens_on_an_imported_task(home_env, page_name):
    at = page(page_name, _keep_task=NAMES["folder"])
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    if page_name == "embedding_space":
        colour = at.sidebar.selectbox(key=f"emb_colour_{NAMES['folder']}")
        assert list(colour.options)[:4] == list(LABEL_COLUMNS)


def test_an_imported_coco_task_gets_a_cross_modal_model_and_text_queries(home_env):
    name, store = NAMES["coco"], ArtifactStore(home_env["home"])
    catalog = load_catalog(name, store)
    assert catalog.text_model_ids() == ["cross_modal-d128-s0"]
    assert [load_catalog(NAMES[f], store).text_model_ids() for f in ("folder", "mpii", "lsun")] == [[], [], []]
    # the cross-modal model trained on every image's own captions, however many it has
    captions = load_split(store, name, "train").meta["captions"]
    counts = [len(c) for c in captions]
    assert set(counts) == {2, 5}
    cached = store.load_array(name, "text", "train", name="captions.npy")
    assert cached.shape[:2] == (len(captions), 5)
    short = counts.index(2)
    np.testing.assert_array_equal(cached[short, [2, 3, 4]], cached[short, [0, 1, 0]])
    assert not np.array_equal(cached[short, 0], cached[short, 1])

    at = page("upload", _keep_task=name)
    assert not at.exception, [e.value for e in at.exception]
    sentence = catalog.gallery.meta["captions"][3][0]
    at.text_input(key="up_text").set_value(sentence).run()
    assert not at.exception and not at.error
    k = at.slider(key="up_k").value
    expected, _ = catalog.hits_for_text(sentence, ["cross_modal-d128-s0"], k)
    grid = [m.value for m in at.markdown if "bb-grid" in m.value][-1]
    assert [int(i) for i in re.findall(r'title="gallery #(\d+)', grid)] == [h.gallery_index for h in expected["cross_modal-d128-s0"]]
