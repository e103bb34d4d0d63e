"""Every JobSubmissionClient call against ADDRESS, as TOKEN's tenant.

Usage: python flow.py ADDRESS TOKEN
Asserts as it goes; the last line of stdout is a JSON summary.
"""

import asyncio
import json
import shlex
import sys
import time
import uuid

from ray.job_submission import JobStatus, JobSubmissionClient

TERMINAL = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}
PRINT_LINES = (
    "import os, time\n"
    "print(os.environ['GREETING'], flush=True)\n"
    "for i in range(3):\n"
    "    print(f'line {i}', flush=True)\n"
    "    time.sleep(0.5)\n"
)


def wait_for(client, submission_id, wanted, limit_s=90):
    deadline = time.monotonic() + limit_s
    while True:
        status = client.get_job_status(submission_id)
        if status in wanted:
            return status
        assert time.monotonic() < deadline, f"{submission_id} is {status}, not {wanted}"
        time.sleep(0.3)


async def tail(client, submission_id):
    chunks = []
    async for lines in client.tail_job_logs(submission_id):
        chunks.append(lines)
    return "".join(chunks)


def main(address, token):
    client = JobSubmissionClient(address, headers={"Authorization": f"Bearer {token}"})
    run = uuid.uuid4().hex[:8]

    # submit_job with a submission id, metadata and a runtime_env.
    first = f"flow-{run}"
    returned = client.submit_job(
        entrypoint=f"python -c {shlex.quote(PRINT_LINES)}",
        submission_id=first,
        metadata={"project": "ant", "raybroker.max_retries": "1"},
        runtime_env={"env_vars": {"GREETING": "hello from the broker"}},
    )
    assert returned == first, returned

    # tail_job_logs follows the log over the WebSocket until the job ends.
    tailed = asyncio.run(tail(client, first))
    for expected in ("hello from the broker", "line 0", "line 2"):
        assert expected in tailed, f"{expected!r} not in the tailed log {tailed!r}"
    status = client.get_job_status(first)
    assert status == JobStatus.SUCCEEDED, status

    info = client.get_job_info(first)
    assert info.submission_id == first, info
    assert info.status == JobStatus.SUCCEEDED, info
    assert info.type.value == "SUBMISSION", info
    assert info.entrypoint.startswith("python -c"), info
    assert info.metadata["project"] == "ant", info
    assert info.runtime_env["env_vars"]["GREETING"] == "hello from the broker", info
    assert info.driver_exit_code == 0, info
    assert info.start_time and info.end_time and info.start_time <= info.end_time, info

    logs = client.get_job_logs(first)
    assert "line 2" in logs, logs
    # get_job_info also accepts the job_id a listing shows.
    assert client.get_job_info(info.job_id).submission_id == first

    # stop_job on a running job, then delete_job once it stopped.
    second = f"flow-stop-{run}"
    client.submit_job(entrypoint="sleep 300", submission_id=second)
    wait_for(client, second, {JobStatus.RUNNING})
    assert client.stop_job(second) is True
    wait_for(client, second, {JobStatus.STOPPED})
    assert client.stop_job(second) is False
    assert client.delete_job(second) is True
    try:
        client.get_job_info(second)
        raise AssertionError("a deleted job is still there")
    except RuntimeError as e:
        assert "does not exist" in str(e), e

    # An id is generated like Ray's when none is given.
    generated = client.submit_job(entrypoint="echo generated")
    assert generated.startswith("raysubmit_") and len(generated) == 26, generated
    wait_for(client, generated, TERMINAL)

    listed = {job.submission_id: job for job in client.list_jobs()}
    assert first in listed and generated in listed, sorted(listed)
    assert second not in listed, "a deleted job is listed"
    assert listed[first].status == JobStatus.SUCCEEDED

    print(json.dumps({
        "first": first,
        "generated": generated,
        "listed": sorted(listed),
        "tailed": tailed,
        "job_id": info.job_id,
    }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
