import EDMMonitorCore
import Testing

/// Credentials are scrubbed from log text; ordinary text is untouched.
@Suite("Log redaction")
struct LogRedactionTests {
    @Test("request heads, bearer credentials and tokens are scrubbed")
    func scrubbed() {
        let head = #"HTTPRequestHead { method: GET, headers: Authorization: Bearer edm_S-MUH3QrAusesibQZGDcXFAhRddfAYZL9lxFnhFpgMA; host: 127.0.0.1 }"#
        #expect(LogRedaction.scrub(head) == #"HTTPRequestHead { method: GET, headers: Authorization: <redacted>; host: 127.0.0.1 }"#)
        #expect(LogRedaction.scrub("proxy-authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l\nnext") == "proxy-authorization: <redacted>\nnext")
        #expect(LogRedaction.scrub("Cookie: session=abc; Path=/") == "Cookie: <redacted>; Path=/")
        #expect(LogRedaction.scrub("sent Bearer abcdefghijklmnopqrstuvwxyz to x") == "sent Bearer <redacted> to x")
        #expect(LogRedaction.scrub("token edm_S-MUH3QrAusesibQZGDcXFAhRddfAYZL9lxFnhFpgMA used") == "token edm_<redacted> used")
    }

    @Test("ordinary text is returned unchanged")
    func untouched() {
        for text in ["the bearer token has expired; ask an admin", "basic authentication is not supported", "edm_queue_oldest_wait_seconds", "edm_a_very_long_metric_name_that_has_many_chars", "GET /api/tasks 200", "王小明 edm_x"] {
            #expect(LogRedaction.scrub(text) == text)
        }
    }
}
