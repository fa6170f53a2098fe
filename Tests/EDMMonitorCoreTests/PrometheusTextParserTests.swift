import EDMMonitorCore
import Testing

@Suite("Prometheus text exposition 0.0.4: parsing")
struct PrometheusTextParserTests {
    static func samples(_ text: String) throws -> [PrometheusParsedSample] {
        try PrometheusTextParser.parse(text).get()
    }

    static func problems(_ text: String) -> [PrometheusParseProblem] {
        guard case .failure(let error) = PrometheusTextParser.parse(text) else { return [] }
        return error.problems
    }

    @Test("types, labels with escapes, timestamps, special values, comments and CR LF")
    func reads() throws {
        let text = "# HELP edm_x_total Things.\r\n# TYPE edm_x_total counter\r\n"
            + "edm_x_total{path=\"/a\\\\b\",quote=\"say \\\"hi\\\"\",nl=\"1\\n2\",} 3 1773050400000\r\n"
            + "\n# a free comment\n"
            + "# TYPE edm_h histogram\n"
            + "edm_h_bucket{le=\"+Inf\"}\t2\n"
            + "edm_h_sum -Inf\n"
            + "edm_h_count 2\n"
            + "edm_plain NaN\n"
            + "  edm_spaced   1.5e3  \n"
        let read = try Self.samples(text)
        #expect(read.map(\.name) == ["edm_x_total", "edm_h_bucket", "edm_h_sum", "edm_h_count", "edm_plain", "edm_spaced"])
        #expect(read.map(\.line) == [3, 7, 8, 9, 10, 11])
        #expect(read.map(\.type) == [.counter, .histogram, .histogram, .histogram, .untyped, .untyped])
        #expect(read[0].labels == ["path": "/a\\b", "quote": "say \"hi\"", "nl": "1\n2"])
        #expect(read[0].timestampMilliseconds == 1_773_050_400_000)
        #expect(read[0].value == 3)
        #expect(read[1].labels == ["le": "+Inf"])
        #expect(read[2].value == -.infinity)
        #expect(read[4].value.isNaN)
        #expect(read[5].value == 1500)
    }

    @Test("a summary's quantiles carry quantile; its _sum and _count belong to it")
    func summary() throws {
        let read = try Self.samples("# TYPE edm_s summary\nedm_s{quantile=\"0.99\"} 1\nedm_s_sum 2\nedm_s_count 3\n")
        #expect(read.map(\.type) == [.summary, .summary, .summary])
        #expect(Self.problems("# TYPE edm_s summary\nedm_s 1\n") == [.init(line: 2, reason: "edm_s needs a quantile label")])
    }

    @Test("every bad line is reported with its number and what is wrong")
    func problems() {
        let text = """
            edm_ok 1
            1bad 2
            edm_a{host="x} 1
            edm_b{host=x} 1
            edm_c{ho-st="x"} 1
            edm_d{a="1",a="2"} 1
            edm_e
            edm_f 1 2 3
            edm_g 1 soon
            edm_h{a="\\q"} 1
            # TYPE edm_i gauge
            # TYPE edm_i counter
            # TYPE edm_j vector
            # TYPE edm_k histogram
            edm_k 1
            edm_ok 2
            edm_l 1
            # TYPE edm_l gauge
            """
        let found = Self.problems(text)
        #expect(found.map(\.line) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 15, 16, 18])
        let reasons = Dictionary(uniqueKeysWithValues: found.map { ($0.line, $0.reason) })
        #expect(reasons[2] == "\"1bad\" is not a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)")
        #expect(reasons[3] == "the value of label host is not closed by a double quote")
        #expect(reasons[4] == "the value of label host must be in double quotes")
        #expect(reasons[6] == "label a is given twice")
        #expect(reasons[7] == "edm_e has no value")
        #expect(reasons[9] == "\"soon\" is not a timestamp (integer Unix milliseconds)")
        #expect(reasons[12] == "second # TYPE line for edm_i")
        #expect(reasons[16] == "edm_ok with these labels was already given")
        #expect(reasons[18] == "# TYPE of edm_l comes after its samples")
    }

    @Test("an empty body has no samples")
    func empty() throws {
        #expect(try Self.samples("").isEmpty)
        #expect(try Self.samples("\n# only comments\n").isEmpty)
    }
}
