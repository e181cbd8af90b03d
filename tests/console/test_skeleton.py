from storage.models import AuditAction
from console.audit.services import record, verify_chain


def test_the_console_builds_and_sends_its_security_headers(console_app):
    response = console_app.test_client().get("/sign-in")
    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


def test_a_signed_out_visitor_is_sent_to_sign_in(console_app):
    response = console_app.test_client().get("/inbox")
    assert response.status_code == 302 and response.headers["Location"].endswith("/sign-in")


def test_audit_entries_chain(console):
    with console.db.session() as session:
        for _ in range(3):
            record(session, AuditAction.INBOX_VIEWED, actor_label="test")
        session.commit()
        assert verify_chain(session).ok
