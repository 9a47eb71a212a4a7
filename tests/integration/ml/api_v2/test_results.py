"""Contract: posting results, `POST /api/v2/jobs/{id}/result/`, through the real broker."""

from __future__ import annotations

import pytest

from ami.jobs.lifecycle import cancel_job
from ami.jobs.models import ImageTask
from ami.jobs.states import JobStatus, TaskState
from ami.main.models import Classification, Detection
from ami.ml.models import Algorithm, ResultReceipt
from tests.support.ml import drain_result_queue, queued_tasks, reserve_all, wire_result

pytestmark = pytest.mark.django_db(transaction=True)


def url(job) -> str:
    return f"/api/v2/jobs/{job.pk}/result/"


def test_results_and_per_image_errors_in_one_post(service, started_job, images, broker):
    tasks = reserve_all(started_job.pk)
    good, bad = images[0].pk, images[1].pk
    body = {
        "results": [
            wire_result(good, tasks[good]),
            wire_result(bad, tasks[bad], error="failed to load image"),
        ],
        "client_info": {"hostname": "gpu-box"},
    }
    response = service.post(url(started_job), body, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "accepted", "job_id": started_job.pk, "results_queued": 2}
    assert drain_result_queue(broker) == 2
    states = dict(ImageTask.objects.filter(job=started_job).values_list("source_image_id", "state"))
    assert (states[good], states[bad]) == (TaskState.DONE, TaskState.FAILED)
    assert ImageTask.objects.get(job=started_job, source_image_id=bad).error == (
        "failed to load image"
    )
    assert Detection.objects.filter(source_image_id=good).count() == 2
    scores = set(Classification.objects.values_list("label", "score"))
    assert scores == {("moth", 0.7)}
    receipts = ResultReceipt.objects.filter(job=started_job)
    assert {r.processing_service.name for r in receipts} == {"contract service"}


def test_the_job_page_names_the_services_and_the_log_too(
    service, started_job, images, broker, member_client, caplog
):
    tasks = reserve_all(started_job.pk)
    body = [wire_result(i.pk, tasks[i.pk]) for i in images]  # an older client: a bare list
    assert service.post(url(started_job), body, format="json").status_code == 200
    assert drain_result_queue(broker) == len(images)
    detail = member_client.get(f"/api/jobs/{started_job.pk}/").json()
    assert detail["status"] == JobStatus.SUCCESS
    assert detail["processing_services"] == ["contract service"]
    saved = [r for r in caplog.records if r.getMessage().startswith("Saved")]
    assert [r.getMessage().split(":")[0] for r in saved] == [
        f"Saved {len(images)} images (from contract service)"
    ]
    assert saved[0].job_context["image_ids"] == [i.pk for i in images]


def test_posting_the_same_results_twice_counts_them_once(service, started_job, images, broker):
    tasks = reserve_all(started_job.pk)
    body = {"results": [wire_result(i.pk, tasks[i.pk]) for i in images[:2]]}
    for _ in range(2):
        assert service.post(url(started_job), body, format="json").status_code == 200
    assert drain_result_queue(broker) == 4
    stage = started_job.stages.get(key="process")
    assert (stage.processed, stage.failed, stage.detections) == (2, 0, 4)
    assert Detection.objects.count() == 4


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r["result"]["detections"][0]["bbox"].update(x2="wide"),
         "results.1.result.detections.0.bbox.x2"),
        (lambda r: r["result"]["detections"][1]["bbox"].update(x2=1.0),
         "results.1.result.detections.1.bbox"),
        (lambda r: r["result"]["detections"][0]["classifications"][0].update(scores=[3]),
         "results.1.result.detections.0.classifications.0.scores.0"),
        (lambda r: r["result"].pop("source_images"), "results.1.result.source_images"),
        (lambda r: r["result"]["source_images"][0].update(id="12a"),
         "results.1.result.source_images.0.id"),
        (lambda r: r["result"]["source_images"][0].update(id="987654"),
         "results.1.result.source_images.0.id"),
        (lambda r: r["result"]["detections"][0].update(source_image_id="1"),
         "results.1.result.detections.0.source_image_id"),
        (lambda r: r.update(reply_subject="$JS.ACK.other"), "results.1.reply_subject"),
        (lambda r: r.pop("reply_subject"), "results.1.reply_subject"),
        (lambda r: r["result"]["detections"][1]["algorithm"].update(key="nope"),
         "results.1.result.detections.1.algorithm.key"),
        (lambda r: r["result"]["detections"][0]["classifications"][0]["algorithm"].update(
            key="elsewhere"), "results.1.result.detections.0.classifications.0.algorithm.key"),
        (lambda r: r["result"].update(pipeline="other-pipeline"), "results.1.result.pipeline"),
        (lambda r: r.update(result={"error": "x"}), "results.1.result.image_id"),
        (lambda r: r.update(result={"error": "x", "image_id": "987654"}),
         "results.1.result.image_id"),
        (lambda r: r.update(result="done"), "results.1.result"),
    ],
)  # fmt: skip
def test_a_bad_post_is_a_400_naming_the_field_and_queues_nothing(
    service, started_job, images, broker, mutate, field
):
    Algorithm.objects.create(key="elsewhere", name="Not in the pipeline", task_type="other")
    tasks = reserve_all(started_job.pk)
    body = [wire_result(image.pk, tasks[image.pk]) for image in images[:2]]
    mutate(body[1])
    response = service.post(url(started_job), {"results": body}, format="json")
    assert response.status_code == 400, response.content
    assert field in [error["field"] for error in response.json()["errors"]]
    assert field in response.json()["detail"]
    assert broker.llen("ml_results") == 0
    assert not ResultReceipt.objects.exists()


def test_unknown_keys_are_ignored_as_upstream_does(service, started_job, images, broker):
    tasks = reserve_all(started_job.pk)
    item = wire_result(images[0].pk, tasks[images[0].pk])
    item["result"]["errors"] = None
    item["result"]["detections"][0]["newer_field"] = {"x": 1}
    response = service.post(url(started_job), {"results": [item], "extra": 1}, format="json")
    assert response.status_code == 200, response.content


def test_an_empty_post_queues_nothing(service, started_job, broker):
    response = service.post(url(started_job), {"results": []}, format="json")
    assert response.json() == {"status": "accepted", "job_id": started_job.pk, "results_queued": 0}


def test_results_for_unknown_or_final_jobs_are_refused(service, started_job, images, broker):
    tasks = reserve_all(started_job.pk)
    body = [wire_result(images[0].pk, tasks[images[0].pk])]
    assert service.post("/api/v2/jobs/999999/result/", body, format="json").status_code == 404
    cancel_job(started_job.pk)
    assert service.post(url(started_job), body, format="json").status_code == 410
    assert broker.llen("ml_results") == 0


def test_the_internal_payload_is_ours_and_small(service, started_job, images, broker):
    tasks = reserve_all(started_job.pk)
    image = images[0].pk
    body = [wire_result(image, tasks[image], boxes=1)]
    assert service.post(url(started_job), body, format="json").status_code == 200
    [(name, args, kwargs)] = queued_tasks(broker)
    assert name == "ami.ml.tasks.save_results" and args[0] == started_job.pk
    [payload] = args[1]
    assert payload["reply_subject"] == tasks[image]
    assert set(payload) == {"image_id", "reply_subject", "detections", "error"}
    assert payload["detections"][0]["classifications"] == [
        {"label": "moth", "score": 0.7, "algorithm": "classifier"}
    ]
    assert kwargs == {"service_name": "contract service"}


@pytest.mark.parametrize(
    ("max_results", "max_bytes", "sizes"),
    [(50, 4 * 2**20, [5]), (2, 4 * 2**20, [2, 2, 1]), (50, 1, [1, 1, 1, 1, 1])],
)
def test_a_post_is_saved_by_one_task_per_chunk(
    service, started_job, images, broker, settings, max_results, max_bytes, sizes
):
    settings.RESULT_TASK_MAX_RESULTS, settings.RESULT_TASK_MAX_BYTES = max_results, max_bytes
    tasks = reserve_all(started_job.pk)
    body = [wire_result(i.pk, tasks[i.pk]) for i in images]
    assert service.post(url(started_job), body, format="json").status_code == 200
    queued = queued_tasks(broker)
    assert [len(args[1]) for _, args, _ in queued] == sizes
    assert [r["image_id"] for _, args, _ in queued for r in args[1]] == [i.pk for i in images]
    assert drain_result_queue(broker) == len(images)
    started_job.refresh_from_db()
    stage = started_job.stages.get(key="process")
    assert (started_job.status, stage.processed, stage.detections) == ("SUCCESS", 5, 10)
