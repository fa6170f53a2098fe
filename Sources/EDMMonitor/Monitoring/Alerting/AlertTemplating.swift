import EDMMonitorCore
import Foundation
import Mustache

/// How an alert reads in notifications: labels and annotations rendered from a rule's
/// templates. Pure (no I/O), shared by the evaluator and the manual resolve.
enum AlertTemplating {
    /// The labels of an alert of `rule` on the series `tags`: the tags, then the rule's labels
    /// (winning over a tag of the same name), then `alertname` — the rule's `alertname` label
    /// when it has one, else its name: as in a Prometheus rule group, several rules (say a
    /// warning and a critical tier, reference case C31) may raise the same alert name, while
    /// rule names stay unique — and `severity`.
    static func labels(rule: AlertRule, tags: [String: String]) -> [String: String] {
        var labels = tags
        labels.merge(rule.labels) { _, rule in rule }
        labels["alertname"] = rule.labels["alertname"] ?? rule.name
        labels["severity"] = rule.severity.rawValue
        return labels
    }

    /// The alert as notifications carry it: labels `alertname`, `severity`, the rule's labels and
    /// the series tags; annotations `summary` and `description` from the rule's Mustache templates
    /// (a template that fails falls back to a plain default); `generatorURL` under `externalURL`
    /// (empty when that is empty).
    static func outgoing(rule: AlertRule, tags: [String: String], value: Double?, startsAt: Date, endsAt: Date?, externalURL: String = "") -> OutgoingAlert {
        let labels = Self.labels(rule: rule, tags: tags)
        let valueText = value.map { $0.formatted(.number.precision(.fractionLength(0...3)).grouping(.never)) } ?? "no data"
        let thresholdText = rule.thresholdValue.map { $0.formatted(.number.precision(.fractionLength(0...3)).grouping(.never)) } ?? ""
        let context: [String: Any] = ["value": valueText, "threshold": thresholdText, "labels": labels, "rule": ["name": rule.name, "metric_name": rule.metricName, "severity": rule.severity.rawValue]]
        let defaultSummary = "\(rule.name): \(rule.metricName) is \(valueText)" + (rule.comparisonOperator.map { " (\($0.rawValue) \(thresholdText))" } ?? "")
        func render(_ template: String?, fallback: String) -> String {
            guard let template, let compiled = try? MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}" + template) else { return fallback }
            return compiled.render(context)
        }
        let annotations = [
            "summary": render(rule.summaryTemplate, fallback: defaultSummary),
            "description": render(rule.descriptionTemplate, fallback: rule.ruleDescription ?? defaultSummary),
        ]
        let path = rule.name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? rule.name
        let generatorURL = externalURL.isEmpty ? "" : externalURL.trimmingSuffix("/") + "/alerts/rules/" + path
        return OutgoingAlert(labels: labels, annotations: annotations, startsAt: startsAt, endsAt: endsAt, generatorURL: generatorURL)
    }
}

/// An `OutgoingAlert` as stored in the outbox (`alert_notifications.alert`, dates as Unix seconds).
struct StoredAlert: Codable {
    var labels: [String: String]
    var annotations: [String: String]
    var startsAt: Date
    var endsAt: Date?
    var generatorURL: String?

    init(_ a: OutgoingAlert) { labels = a.labels; annotations = a.annotations; startsAt = a.startsAt; endsAt = a.endsAt; generatorURL = a.generatorURL }

    /// The alert back as the senders take it.
    var outgoing: OutgoingAlert { OutgoingAlert(labels: labels, annotations: annotations, startsAt: startsAt, endsAt: endsAt, generatorURL: generatorURL ?? "") }

    /// Decodes the stored text, or `nil`.
    init?(storedText: String) {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        guard let stored = try? decoder.decode(StoredAlert.self, from: Data(storedText.utf8)) else { return nil }
        self = stored
    }
}

extension String {
    /// The string without one trailing `suffix`.
    func trimmingSuffix(_ suffix: String) -> String { hasSuffix(suffix) ? String(dropLast(suffix.count)) : self }
}
