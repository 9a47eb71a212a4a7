"""The synthetic captures are deterministic, and the bundled model finds their objects."""

from __future__ import annotations

import numpy as np

from ami_lab.demo import data as demo_data
from ami_lab.worker.model import BlobModel, iou, load_model


def test_an_image_is_the_same_every_time_and_differs_from_its_neighbours():
    first, truth = demo_data.render(5, 3)
    again, truth_again = demo_data.render(5, 3)
    other, _ = demo_data.render(5, 4)
    assert np.array_equal(first, again) and truth == truth_again
    assert not np.array_equal(first, other)
    assert first.shape == (demo_data.HEIGHT, demo_data.WIDTH, 3)


def test_objects_are_apart_and_inside_the_image():
    for index in range(30):
        _, objects = demo_data.render(1, index)
        for i, a in enumerate(objects):
            assert 0 <= a.x1 < a.x2 <= demo_data.WIDTH and 0 <= a.y1 < a.y2 <= demo_data.HEIGHT
            assert all(iou(a.bbox, b.bbox) == 0 for b in objects[i + 1 :])


def test_dataset_is_written_once_with_its_ground_truth(tmp_path):
    truth = demo_data.write_dataset(tmp_path, 4, seed=3)
    first = tmp_path / demo_data.image_name(0)
    stamp = first.stat().st_mtime_ns
    assert demo_data.write_dataset(tmp_path, 4, seed=3) == truth
    assert first.stat().st_mtime_ns == stamp
    (seed, count), read = demo_data.read_ground_truth(tmp_path)
    assert (seed, count, read) == (3, 4, truth)
    fewer = demo_data.write_dataset(tmp_path, 2, seed=3)
    assert fewer == {name: truth[name] for name in list(truth)[:2]}
    assert first.stat().st_mtime_ns == stamp


def test_bundled_model_detects_and_classifies_unseen_images():
    model = load_model("ami_lab.worker.model:BlobModel")
    assert isinstance(model, BlobModel)
    matched = labelled = total = found = 0
    for index in range(20):
        image, objects = demo_data.render(12345, index)
        detections = model.process(image)
        found += len(detections)
        total += len(objects)
        for obj in objects:
            best = max(detections, key=lambda d, o=obj: iou(d.bbox, o.bbox), default=None)
            if best is not None and iou(best.bbox, obj.bbox) >= 0.5:
                matched += 1
                labelled += best.classifications[0].label == obj.label
    assert total > 40
    assert matched / total >= 0.95 and matched / found >= 0.95
    assert labelled / matched >= 0.9
