"""Tenant isolation through Ray's client: TOKEN_B cannot see TOKEN_A's job.

Usage: python isolation.py ADDRESS TOKEN_A TOKEN_B
Asserts as it goes; the last line of stdout is a JSON summary.
"""

import json
import sys
import uuid

from ray.job_submission import JobSubmissionClient


def client_for(address, token):
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return JobSubmissionClient(address, headers=headers)


def refused(call):
    try:
        call()
    except Exception as e:  # noqa: BLE001 - the type is part of the result
        return f"{type(e).__name__}: {e}"
    raise AssertionError("the call was not refused")


def main(address, token_a, token_b):
    a, b = client_for(address, token_a), client_for(address, token_b)
    shared_id = f"isolation-{uuid.uuid4().hex[:8]}"
    a.submit_job(entrypoint="echo tenant a", submission_id=shared_id)

    not_found = {
        "info": refused(lambda: b.get_job_info(shared_id)),
        "logs": refused(lambda: b.get_job_logs(shared_id)),
        "stop": refused(lambda: b.stop_job(shared_id)),
        "delete": refused(lambda: b.delete_job(shared_id)),
        "info_by_job_id": refused(lambda: b.get_job_info(a.get_job_info(shared_id).job_id)),
    }
    for what, error in not_found.items():
        assert "status code 404" in error and "does not exist" in error, (what, error)
    assert shared_id not in {j.submission_id for j in b.list_jobs()}
    assert shared_id in {j.submission_id for j in a.list_jobs()}

    # Submission ids are per tenant: B may use the same one for its own job.
    assert b.submit_job(entrypoint="echo tenant b", submission_id=shared_id) == shared_id
    assert b.get_job_info(shared_id).entrypoint == "echo tenant b"
    assert a.get_job_info(shared_id).entrypoint == "echo tenant a"

    # No token and a wrong token are refused as Ray's token auth refuses them.
    anonymous = client_for(address, None)
    wrong = client_for(address, "not-a-valid-token-0123456789")
    auth = {
        "missing": refused(lambda: anonymous.submit_job(entrypoint="echo x")),
        "wrong": refused(lambda: wrong.list_jobs()),
    }
    assert "401" in auth["missing"] or "Authentication required" in auth["missing"], auth
    assert "403" in auth["wrong"] or "Authentication failed" in auth["wrong"], auth
    print(json.dumps({"shared_id": shared_id, "not_found": not_found, "auth": auth}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
