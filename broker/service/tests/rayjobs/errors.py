"""The errors JobSubmissionClient raises for three bad requests.

Usage: python errors.py ADDRESS TOKEN
Runs against a real Ray head or the broker alike; the last line of stdout is
JSON: {case: {"type": exception class name, "message": str(exception)}}.
"""

import json
import sys
import uuid

from ray.job_submission import JobSubmissionClient


def caught(call):
    try:
        call()
    except Exception as e:  # noqa: BLE001 - the type is what is compared
        return {"type": type(e).__name__, "message": str(e)}
    return {"type": None, "message": "no error raised"}


def missing_entrypoint(client):
    # The SDK refuses a missing entrypoint before sending, so send the body
    # the way submit_job does and let the SDK raise for the answer.
    response = client._do_request("POST", "/api/jobs/", json_data={"runtime_env": {}})
    if response.status_code != 200:
        client._raise_error(response)


def main(address, token):
    client = JobSubmissionClient(address, headers={"Authorization": f"Bearer {token}"})
    run = uuid.uuid4().hex[:8]
    duplicate = f"errors-dup-{run}"
    client.submit_job(entrypoint="echo first", submission_id=duplicate)
    unknown = f"errors-unknown-{run}"
    print(json.dumps({
        "duplicate_submission_id": caught(
            lambda: client.submit_job(entrypoint="echo second", submission_id=duplicate)
        ),
        "unknown_job_info": caught(lambda: client.get_job_info(unknown)),
        "unknown_job_stop": caught(lambda: client.stop_job(unknown)),
        "unknown_job_logs": caught(lambda: client.get_job_logs(unknown)),
        "missing_entrypoint": caught(lambda: missing_entrypoint(client)),
    }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
