"""Out-of-domain evidence (dml_core.serve.ood): generated images read as typical, real photos do not."""
import io

import numpy as np
import pytest
from PIL import Image

from dml_core.core.images import decode_image, to_square_array
from dml_core.core.store import ArtifactStore
from dml_core.data.tasks import get_task
from dml_core.serve import ood
from dml_core.serve.catalog import load_catalog
from dml_core.serve.upload import query_with_image_bytes


def photos() -> dict[str, bytes]:
    """Real photographs (scikit-learn's sample images) as JPEG files, plus a photo-like crop."""
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images
    crop = Image.fromarray(china[40:340, 180:480]).resize((200, 200))
    out = {}
    for name, image in (("china.jpg", Image.fromarray(china)), ("flower.jpg", Image.fromarray(flower)), ("china-crop.jpg", crop)):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        out[name] = buffer.getvalue()
    return out


def typicality_of(catalog, data: bytes) -> ood.Typicality:
    array = to_square_array(decode_image(data), catalog.gallery.images.shape[1])
    return ood.typicality(catalog, catalog.query_features(array[None]))


@pytest.fixture(scope="module")
def pose(built_home):
    return load_catalog("pose", ArtifactStore(built_home))


def test_the_warning_starts_at_tukeys_far_out_fence():
    reference = np.arange(1.0, 101.0) / 100  # quartiles 0.2575 and 0.7525
    fence = 0.7525 + 3 * (0.7525 - 0.2575)
    near, far = (ood.Typicality(d, ood.percentile_of(d, reference), reference, 0) for d in (fence - 1e-9, fence + 1e-9))
    assert near.fence == pytest.approx(fence) and not near.unfamiliar and far.unfamiliar
    assert near.percentile == far.percentile == 100.0  # the percentile alone cannot tell these apart


def test_nearest_distances_and_percentiles():
    gallery = np.array([[1.0, 0.0], [0.0, 1.0]])
    distances, nearest = ood.nearest_distances(np.array([[1.0, 0.1], [-1.0, 0.0], [0.0, 2.0]]), gallery)
    np.testing.assert_allclose(distances, [1 - 1 / np.sqrt(1.01), 1.0, 0.0], atol=1e-12)
    assert nearest.tolist() == [0, 1, 1]  # [-1, 0] is orthogonal to [0, 1], opposite to [1, 0]
    reference = np.array([0.1, 0.2, 0.3, 0.4])
    assert [ood.percentile_of(v, reference) for v in (0.05, 0.2, 0.35, 9.0)] == [0.0, 25.0, 75.0, 100.0]


def test_a_query_set_image_lands_where_its_stored_features_do(pose):
    """The image path (decode → backbone → pooled features) measures what the build stored."""
    reference = ood.reference_distances(pose)
    assert len(reference) == len(pose.queries) and np.all(np.diff(reference) >= 0)
    model = pose.models[ood.FEATURE_MODEL]
    stored, _ = ood.nearest_distances(model.query, model.gallery)
    median = int(np.argsort(stored)[len(stored) // 2])
    buffer = io.BytesIO()
    pose.queries.image(median).save(buffer, format="PNG")
    measured = typicality_of(pose, buffer.getvalue())
    assert measured.distance == pytest.approx(stored[median], abs=2e-3)
    assert measured.percentile < 100 and not measured.unfamiliar


def test_real_photos_are_unfamiliar_and_fresh_generated_images_are_not(pose):
    generated = get_task("pose").generate(3, seed=9_001)
    fresh = [ood.typicality(pose, pose.query_features(np.asarray(generated.images[i:i + 1]))) for i in range(3)]
    real = {name: typicality_of(pose, data) for name, data in photos().items()}
    for name, typicality in real.items():
        assert typicality.unfamiliar and typicality.percentile == 100.0, (name, typicality.summary())
    for typicality in fresh:
        assert not typicality.unfamiliar, typicality.summary()
    # every photo is farther from the gallery than every newly generated image
    assert max(t.distance for t in fresh) < min(t.distance for t in real.values())
    assert all(t.times_median < min(r.times_median for r in real.values()) for t in fresh)


def test_the_upload_path_reports_typicality(pose):
    result = query_with_image_bytes(pose, photos()["flower.jpg"], ["log_ratio-d128-s0"], 5, place_on=[])
    assert result.typicality is not None and result.typicality.unfamiliar
    facts = result.typicality.to_dict()
    assert facts["percentile"] == 100.0 and facts["reference_queries"] == len(pose.queries)
    assert "farther than 100% of the" in result.typicality.summary()
