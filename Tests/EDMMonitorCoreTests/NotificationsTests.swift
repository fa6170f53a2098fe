import Foundation
import Testing
import EDMMonitorCore

/// Parses an RFC 3339 UTC instant written in a test.
private func instant(_ text: String) throws -> Date {
    try Date.ISO8601FormatStyle().parse(text)
}

/// The JSON value of `data`, as Foundation objects that compare by value.
private func parsedJSON(_ data: Data) throws -> NSObject {
    try #require(JSONSerialization.jsonObject(with: data) as? NSObject)
}

/// README C17 inputs; annotations and URLs as in the expected files.
private func c17Alert(endsAt: Date?) throws -> OutgoingAlert {
    OutgoingAlert(
        labels: [
            "alertname": "EdmTaskStuck",
            "severity": "critical",
            "service": "edm-monitor",
            "task_id": "T-20260309-0007",
        ],
        annotations: [
            "summary": "任务 T-20260309-0007 已超过 10 分钟没有进展",
            "description": "Oldest pending subtask has waited 742 s (threshold 600 s).",
        ],
        startsAt: try instant("2026-03-09T10:05:00Z"),
        endsAt: endsAt,
        generatorURL: "http://edm-monitor.example.com:8080/alerts/rules/EdmTaskStuck"
    )
}

private let c17ExternalURL = "http://edm-monitor.example.com:8080"

@Suite("Alertmanager label-set fingerprint")
struct LabelSetFingerprintTests {
    @Test("empty label set is the FNV-1a offset basis")
    func emptySet() {
        #expect(LabelSetFingerprint(labels: [:]).description == "cbf29ce484222325")
    }

    @Test("Prometheus's own check vector")
    func prometheusVector() {
        let fingerprint = LabelSetFingerprint(labels: ["fear": "love is not enough", "name": "garland, briggs"])
        #expect(fingerprint.rawValue == 5_799_056_148_416_392_346)
    }

    @Test("C17 labels give e21729ca2b62bb77")
    func c17() throws {
        #expect(try c17Alert(endsAt: nil).fingerprint.description == "e21729ca2b62bb77")
    }

    @Test("hex form is zero-padded to 16 digits")
    func padding() {
        #expect(LabelSetFingerprint(rawValue: 0xabc).description == "0000000000000abc")
    }

    @Test("the separator keeps name/value boundaries apart")
    func boundaries() {
        #expect(LabelSetFingerprint(labels: ["a": "bc"]) != LabelSetFingerprint(labels: ["ab": "c"]))
    }
}

@Suite("Alertmanager webhook payload v4")
struct AlertmanagerWebhookPayloadTests {
    @Test("C17 firing payload equals the expected JSON")
    func c17Firing() throws {
        let payload = try AlertmanagerWebhookPayload.make(
            alerts: [c17Alert(endsAt: nil)], receiver: "ops-webhook", groupBy: ["alertname"],
            externalURL: c17ExternalURL, now: instant("2026-03-09T10:06:00Z"))
        let expected = try parsedJSON(Fixture.data("C17-webhook-firing.expected.json"))
        #expect(try parsedJSON(payload.jsonData()) == expected)
    }

    @Test("C17 resolved payload equals the expected JSON")
    func c17Resolved() throws {
        let resolvedAt = try instant("2026-03-09T10:31:30Z")
        let payload = try AlertmanagerWebhookPayload.make(
            alerts: [c17Alert(endsAt: resolvedAt)], receiver: "ops-webhook", groupBy: ["alertname"],
            externalURL: c17ExternalURL, now: resolvedAt)
        let expected = try parsedJSON(Fixture.data("C17-webhook-resolved.expected.json"))
        #expect(try parsedJSON(payload.jsonData()) == expected)
    }

    @Test("an end time still in the future counts as firing, as in Alertmanager")
    func futureEndIsFiring() throws {
        let payload = try AlertmanagerWebhookPayload.make(
            alerts: [c17Alert(endsAt: instant("2026-03-09T11:00:00Z"))], receiver: "r", groupBy: ["alertname"],
            externalURL: "", now: instant("2026-03-09T10:40:00Z"))
        #expect(payload.status == .firing)
        #expect(payload.alerts.first?.endsAt == "0001-01-01T00:00:00Z")
    }

    @Test("common labels and annotations are the pairs every alert shares; group fires if any alert fires")
    func commonAcrossAlerts() throws {
        let start = try instant("2026-03-09T10:00:00Z")
        let alerts = [
            OutgoingAlert(labels: ["alertname": "QueueSlow", "service": "a", "severity": "warning"],
                          annotations: ["summary": "slow"], startsAt: start, endsAt: start),
            OutgoingAlert(labels: ["alertname": "QueueSlow", "service": "b", "severity": "warning"],
                          annotations: ["summary": "slow", "runbook": "x"], startsAt: start),
        ]
        let payload = try AlertmanagerWebhookPayload.make(
            alerts: alerts, receiver: "r", groupBy: ["alertname", "cluster"], externalURL: "",
            now: start.addingTimeInterval(60), maxAlerts: 1)
        #expect(payload.commonLabels == ["alertname": "QueueSlow", "severity": "warning"])
        #expect(payload.commonAnnotations == ["summary": "slow"])
        #expect(payload.groupLabels == ["alertname": "QueueSlow"])
        #expect(payload.status == .firing)
        #expect(payload.alerts.count == 1)
        #expect(payload.truncatedAlerts == 1)
        #expect(payload.alerts.first?.status == .resolved)
    }

    @Test("group key sorts labels and quotes values like Go's %q")
    func groupKeyQuoting() throws {
        let alert = OutgoingAlert(labels: ["b": "say \"hi\"\n", "a": "x\\y"], startsAt: Date(timeIntervalSince1970: 0))
        let payload = try AlertmanagerWebhookPayload.make(
            alerts: [alert], receiver: "r", groupBy: ["b", "a"], externalURL: "", now: Date(timeIntervalSince1970: 0))
        #expect(payload.groupKey == #"{}:{a="x\\y", b="say \"hi\"\n"}"#)
    }

    @Test("alerts that differ on a group-by label are refused; so is an empty group")
    func refusals() throws {
        let start = Date(timeIntervalSince1970: 0)
        let alerts = [
            OutgoingAlert(labels: ["alertname": "A"], startsAt: start),
            OutgoingAlert(labels: ["alertname": "B"], startsAt: start),
        ]
        #expect(throws: AlertNotificationError.mixedGroup(label: "alertname", first: "A", other: "B")) {
            try AlertmanagerWebhookPayload.make(alerts: alerts, receiver: "r", groupBy: ["alertname"], externalURL: "", now: start)
        }
        #expect(throws: AlertNotificationError.noAlerts) {
            try AlertmanagerWebhookPayload.make(alerts: [], receiver: "r", groupBy: [], externalURL: "", now: start)
        }
    }

    @Test("sub-second times keep their milliseconds without trailing zeros")
    func fractionalTimestamp() throws {
        let alert = OutgoingAlert(labels: ["a": "b"], startsAt: try instant("2026-03-09T10:05:00Z").addingTimeInterval(0.25))
        let payload = try AlertmanagerWebhookPayload.make(
            alerts: [alert], receiver: "r", groupBy: [], externalURL: "", now: alert.startsAt)
        #expect(payload.alerts.first?.startsAt == "2026-03-09T10:05:00.25Z")
        #expect(payload.groupKey == "{}:{}")
    }
}

@Suite("Slack incoming-webhook message")
struct SlackWebhookMessageTests {
    @Test("firing critical alert: headline like Alertmanager's default title, red attachment")
    func firing() throws {
        let payload = try AlertmanagerWebhookPayload.make(
            alerts: [c17Alert(endsAt: nil)], receiver: "slack", groupBy: ["alertname"],
            externalURL: c17ExternalURL, now: instant("2026-03-09T10:06:00Z"))
        let message = SlackWebhookMessage(payload: payload)
        #expect(message.text == "[FIRING:1] EdmTaskStuck (edm-monitor critical T-20260309-0007)")
        #expect(message.attachments.count == 1)
        #expect(message.attachments.first?.color == "danger")
        #expect(message.attachments.first?.title == "[FIRING] EdmTaskStuck")
        #expect(message.attachments.first?.titleLink == "http://edm-monitor.example.com:8080/alerts/rules/EdmTaskStuck")
        let json = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(message)) as? [String: Any])
        let first = try #require((json["attachments"] as? [[String: Any]])?.first)
        #expect(first["title_link"] as? String == "http://edm-monitor.example.com:8080/alerts/rules/EdmTaskStuck")
    }

    @Test("resolved alert is green; Slack control characters are escaped")
    func resolvedAndEscaped() throws {
        let at = Date(timeIntervalSince1970: 1_000)
        let alert = OutgoingAlert(labels: ["alertname": "A<b>&c", "severity": "warning"],
                                  annotations: ["summary": "<!channel> & more"], startsAt: at, endsAt: at)
        let payload = try AlertmanagerWebhookPayload.make(alerts: [alert], receiver: "s", groupBy: ["alertname"], externalURL: "", now: at)
        let message = SlackWebhookMessage(payload: payload)
        #expect(message.text == "[RESOLVED] A&lt;b&gt;&amp;c (warning)")
        #expect(message.attachments.first?.color == "good")
        #expect(message.attachments.first?.text == "&lt;!channel&gt; &amp; more")
        #expect(message.attachments.first?.titleLink == nil)
    }
}

@Suite("Alertmanager API v2 POST /api/v2/alerts body")
struct AlertmanagerPostableAlertTests {
    @Test("firing alert has no endsAt; resolved one has it; empty generatorURL left out")
    func body() throws {
        let firing = try c17Alert(endsAt: nil)
        let resolved = OutgoingAlert(labels: ["alertname": "X"], startsAt: try instant("2026-03-09T10:00:00Z"),
                                     endsAt: try instant("2026-03-09T10:30:00Z"))
        let data = try AlertmanagerPostableAlert.bodyData(for: [firing, resolved])
        let array = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        #expect(array.count == 2)
        #expect(array[0]["endsAt"] == nil)
        #expect(array[0]["startsAt"] as? String == "2026-03-09T10:05:00Z")
        #expect(array[0]["generatorURL"] as? String == firing.generatorURL)
        #expect((array[0]["labels"] as? [String: String])?["task_id"] == "T-20260309-0007")
        #expect(array[1]["endsAt"] as? String == "2026-03-09T10:30:00Z")
        #expect(array[1]["generatorURL"] == nil)
    }

    @Test("alerts Alertmanager would reject are refused")
    func refusals() {
        let at = Date(timeIntervalSince1970: 0)
        #expect(throws: AlertNotificationError.emptyLabelSet) {
            try AlertmanagerPostableAlert.body(for: [OutgoingAlert(labels: [:], startsAt: at)])
        }
        #expect(throws: AlertNotificationError.invalidLabelName("task-id")) {
            try AlertmanagerPostableAlert.body(for: [OutgoingAlert(labels: ["task-id": "1"], startsAt: at)])
        }
        #expect(throws: AlertNotificationError.endsBeforeStart(labels: ["a": "b"])) {
            try AlertmanagerPostableAlert.body(for: [OutgoingAlert(labels: ["a": "b"], startsAt: at, endsAt: at - 1)])
        }
    }
}
