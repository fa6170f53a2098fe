import Testing
import EDMMonitorCore

@Suite("Prometheus text exposition 0.0.4")
struct PrometheusTextFormatTests {
    @Test("values are written as Go writes them, integers below 2^53 in full", arguments: [
        (Double.nan, "NaN"), (.infinity, "+Inf"), (-.infinity, "-Inf"),
        (0, "0"), (-0.0, "0"), (1, "1"), (-1, "-1"), (42, "42"),
        (1_500_000, "1500000"), (-9_007_199_254_740_991, "-9007199254740991"),
        (9_007_199_254_740_992, "9.007199254740992e+15"), (1e21, "1e+21"),
        (0.5, "0.5"), (0.1, "0.1"), (0.0001, "0.0001"), (0.00001, "1e-05"), (-2.5e-7, "-2.5e-07"),
        (123_456.7, "123456.7"), (999_999.5, "999999.5"), (1_234_567.8, "1.2345678e+06"),
        (1.7976931348623157e308, "1.7976931348623157e+308"), (Double.leastNonzeroMagnitude, "5e-324"),
    ] as [(Double, String)])
    func values(value: Double, expected: String) {
        #expect(PrometheusTextFormat.formatValue(value) == expected)
    }

    @Test("families sorted by name, one HELP/TYPE each, samples in a fixed order, escapes applied")
    func golden() throws {
        let families = [
            PrometheusMetricFamily(
                name: "edm_task_wait_seconds", help: "Wait from task creation to first email.", type: .histogram,
                samples: [
                    PrometheusSample(suffix: "_count", labels: ["service": "b"], value: 1),
                    PrometheusSample(suffix: "_bucket", labels: ["service": "b", "le": "+Inf"], value: 1),
                    PrometheusSample(suffix: "_bucket", labels: ["le": "10", "service": "a"], value: 2),
                    PrometheusSample(suffix: "_sum", labels: ["service": "a"], value: 7.5),
                    PrometheusSample(suffix: "_bucket", labels: ["le": "+Inf", "service": "a"], value: 3),
                    PrometheusSample(suffix: "_count", labels: ["service": "a"], value: 3),
                    PrometheusSample(suffix: "_bucket", labels: ["le": "0.5", "service": "a"], value: 1),
                    PrometheusSample(suffix: "_sum", labels: ["service": "b"], value: 30),
                ]),
            PrometheusMetricFamily(
                name: "edm_emails_sent_total", help: "Emails sent.\nCounts C:\\ paths too.", type: .counter,
                samples: [
                    PrometheusSample(labels: ["service": "smtp-b"], value: 1_500_000),
                    PrometheusSample(labels: ["service": "smtp-a", "note": "say \"hi\"\nback\\slash"], value: 3),
                ]),
            PrometheusMetricFamily(
                name: "edm_send_latency_seconds", help: "", type: .summary,
                samples: [
                    PrometheusSample(suffix: "_count", value: 4),
                    PrometheusSample(labels: ["quantile": "0.99"], value: 0.25, timestampMilliseconds: 1_773_050_700_000),
                    PrometheusSample(labels: ["quantile": "0.5"], value: 0.125),
                    PrometheusSample(suffix: "_sum", value: 0.75),
                ]),
            PrometheusMetricFamily(name: "edm_unused", help: "Never set.", type: .gauge, samples: []),
            PrometheusMetricFamily(name: "edm_queue_depth", help: "Pending subtasks.", type: .untyped,
                                   samples: [PrometheusSample(value: .nan)]),
        ]
        let expected = """
        # HELP edm_emails_sent_total Emails sent.\\nCounts C:\\\\ paths too.
        # TYPE edm_emails_sent_total counter
        edm_emails_sent_total{note="say \\"hi\\"\\nback\\\\slash",service="smtp-a"} 3
        edm_emails_sent_total{service="smtp-b"} 1500000
        # HELP edm_queue_depth Pending subtasks.
        # TYPE edm_queue_depth untyped
        edm_queue_depth NaN
        # TYPE edm_send_latency_seconds summary
        edm_send_latency_seconds{quantile="0.5"} 0.125
        edm_send_latency_seconds{quantile="0.99"} 0.25 1773050700000
        edm_send_latency_seconds_sum 0.75
        edm_send_latency_seconds_count 4
        # HELP edm_task_wait_seconds Wait from task creation to first email.
        # TYPE edm_task_wait_seconds histogram
        edm_task_wait_seconds_bucket{service="a",le="0.5"} 1
        edm_task_wait_seconds_bucket{service="a",le="10"} 2
        edm_task_wait_seconds_bucket{service="a",le="+Inf"} 3
        edm_task_wait_seconds_sum{service="a"} 7.5
        edm_task_wait_seconds_count{service="a"} 3
        edm_task_wait_seconds_bucket{service="b",le="+Inf"} 1
        edm_task_wait_seconds_sum{service="b"} 30
        edm_task_wait_seconds_count{service="b"} 1

        """
        #expect(try PrometheusTextFormat.encode(families) == expected)
        #expect(try PrometheusTextFormat.encode([]) == "")
    }

    @Test("a CR LF in help or a label value keeps its CR and escapes the LF")
    func crlf() throws {
        let family = PrometheusMetricFamily(name: "m", help: "a\r\nb", type: .gauge,
                                            samples: [PrometheusSample(labels: ["l": "x\r\ny"], value: 1)])
        #expect(try PrometheusTextFormat.encode([family]) == "# HELP m a\r\\nb\n# TYPE m gauge\nm{l=\"x\r\\ny\"} 1\n")
    }

    @Test("invalid input is refused with the offending name")
    func refusals() {
        func encode(_ families: PrometheusMetricFamily...) throws { _ = try PrometheusTextFormat.encode(families) }
        let one = [PrometheusSample(value: 1)]
        #expect(throws: PrometheusExpositionError.invalidMetricName("edm-sent")) {
            try encode(.init(name: "edm-sent", help: "h", type: .gauge, samples: one))
        }
        #expect(throws: PrometheusExpositionError.invalidLabelName(metric: "m", label: "1x")) {
            try encode(.init(name: "m", help: "h", type: .gauge, samples: [.init(labels: ["1x": "v"], value: 1)]))
        }
        #expect(throws: PrometheusExpositionError.reservedLabelName(metric: "m", label: "__name__")) {
            try encode(.init(name: "m", help: "h", type: .gauge, samples: [.init(labels: ["__name__": "v"], value: 1)]))
        }
        #expect(throws: PrometheusExpositionError.duplicateFamily("m")) {
            try encode(.init(name: "m", help: "h", type: .gauge, samples: one), .init(name: "m", help: "h", type: .gauge, samples: one))
        }
        #expect(throws: PrometheusExpositionError.unexpectedSuffix(family: "m", type: .counter, suffix: "_sum")) {
            try encode(.init(name: "m", help: "h", type: .counter, samples: [.init(suffix: "_sum", value: 1)]))
        }
        #expect(throws: PrometheusExpositionError.missingLabel(metric: "h_bucket", label: "le")) {
            try encode(.init(name: "h", help: "h", type: .histogram, samples: [.init(suffix: "_bucket", value: 1)]))
        }
        #expect(throws: PrometheusExpositionError.unexpectedLabel(metric: "s_sum", label: "quantile")) {
            try encode(.init(name: "s", help: "h", type: .summary, samples: [.init(suffix: "_sum", labels: ["quantile": "0.5"], value: 1)]))
        }
        #expect(throws: PrometheusExpositionError.invalidBoundary(metric: "h_bucket", label: "le", value: "ten")) {
            try encode(.init(name: "h", help: "h", type: .histogram, samples: [.init(suffix: "_bucket", labels: ["le": "ten"], value: 1)]))
        }
        #expect(throws: PrometheusExpositionError.missingInfBucket(family: "h", labels: ["s": "a"])) {
            try encode(.init(name: "h", help: "h", type: .histogram, samples: [.init(suffix: "_bucket", labels: ["s": "a", "le": "1"], value: 1)]))
        }
        #expect(throws: PrometheusExpositionError.duplicateSeries(metric: "m", labels: ["a": "1"])) {
            try encode(.init(name: "m", help: "h", type: .gauge, samples: [.init(labels: ["a": "1"], value: 1), .init(labels: ["a": "1"], value: 2)]))
        }
        #expect(throws: PrometheusExpositionError.sampleNameCollision(sample: "h_count", families: ["h", "h_count"])) {
            try encode(.init(name: "h_count", help: "h", type: .gauge, samples: one),
                       .init(name: "h", help: "h", type: .histogram, samples: [.init(suffix: "_bucket", labels: ["le": "+Inf"], value: 1)]))
        }
    }
}

@Suite("Metric and label name rules")
struct PrometheusNameTests {
    @Test("ingest metric names: pattern and 100-character limit")
    func ingest() throws {
        try PrometheusName.validateIngestMetricName("edm_emails_sent_total")
        try PrometheusName.validateIngestMetricName("job:edm_sent:rate5m")
        try PrometheusName.validateIngestMetricName("_x")
        try PrometheusName.validateIngestMetricName(String(repeating: "a", count: 100))
        #expect(throws: PrometheusNameError.tooLong(101, limit: 100)) {
            try PrometheusName.validateIngestMetricName(String(repeating: "a", count: 101))
        }
        #expect(throws: PrometheusNameError.empty) { try PrometheusName.validateIngestMetricName("") }
        for bad in ["1abc", "edm-sent", "edm sent", "édm", "edm.sent", "edm_sent\n"] {
            #expect(throws: PrometheusNameError.invalidMetricName(bad)) { try PrometheusName.validateIngestMetricName(bad) }
        }
    }

    @Test("label names take no colon")
    func labels() {
        #expect(PrometheusName.isValidLabelName("task_id"))
        #expect(PrometheusName.isValidLabelName("_a1"))
        #expect(!PrometheusName.isValidLabelName("a:b"))
        #expect(!PrometheusName.isValidLabelName("9a"))
        #expect(!PrometheusName.isValidLabelName(""))
        #expect(PrometheusName.isValidMetricName("a:b"))
    }
}
