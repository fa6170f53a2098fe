import Foundation
import Testing
import EDMMonitorCore

// MARK: Helpers (file-private: other helpers share this test target)

/// One evaluation step of a table: time, observation, expected state and events.
private struct Step: Sendable {
    let t: Double
    let observation: AlertObservation
    let state: AlertInstanceState
    let events: [AlertEvent]

    init(_ t: Double, _ observation: AlertObservation, _ state: AlertInstanceState, _ events: [AlertEvent] = []) {
        self.t = t
        self.observation = observation
        self.state = state
        self.events = events
    }
}

private func v(_ value: Double) -> AlertObservation { .value(value) }

private func firing(_ activeAt: Double, _ firedAt: Double, notified: Double? = nil, keepSince: Double? = nil) -> AlertInstanceState {
    .firing(activeAt: activeAt, firedAt: firedAt, lastNotifiedAt: notified ?? firedAt, keepFiringSince: keepSince)
}

/// Runs `steps` from `initial` and checks every state and event list; returns all events.
@discardableResult
private func run(_ rule: AlertRuleParameters, _ steps: [Step], from initial: AlertInstanceState = .inactive,
                 sourceLocation: SourceLocation = #_sourceLocation) -> [AlertEvent] {
    var state = initial
    var all: [AlertEvent] = []
    for step in steps {
        let result = AlertStateMachine.evaluate(previous: state, observation: step.observation, rule: rule, now: step.t)
        #expect(result.state == step.state, "state at t=\(step.t)", sourceLocation: sourceLocation)
        #expect(result.events == step.events, "events at t=\(step.t)", sourceLocation: sourceLocation)
        state = result.state
        all += result.events
    }
    return all
}

private func threshold(_ op: AlertComparisonOperator, _ value: Double, for forDuration: Double = 0,
                       keepFiringFor: Double = 0, resolve: Double? = nil, repeatInterval: Double? = nil,
                       noData: AlertNoDataPolicy = .ok) throws -> AlertRuleParameters {
    try AlertRuleParameters(condition: .threshold(aggregation: .last, op: op, threshold: value), window: 30,
                            forDuration: forDuration, keepFiringFor: keepFiringFor, resolveThreshold: resolve,
                            repeatInterval: repeatInterval, noData: noData)
}

// MARK: C13

@Suite("Alerting: C13 pending duration and flapping")
struct AlertC13Tests {
    /// The rule from the fixture's `# rule:` line, evaluated on a 30 s window of `last` (one sample
    /// per evaluation), and the `(t, value)` rows.
    static func load() throws -> (AlertRuleParameters, [MetricSample]) {
        let text = try Fixture.string("C13-queue-wait-flap.csv")
        let lines = text.split(whereSeparator: \.isNewline).map(String.init)
        let ruleLine = try #require(lines.first { $0.hasPrefix("# rule:") })
        let json = try #require(ruleLine.dropFirst("# rule:".count).data(using: .utf8))
        struct RuleJSON: Decodable {
            let op: String, threshold: Double, for_seconds: Double, eval_interval_seconds: Double
        }
        let spec = try JSONDecoder().decode(RuleJSON.self, from: json)
        let rule = try AlertRuleParameters(
            condition: .threshold(aggregation: .last, op: AlertComparisonOperator(parsing: spec.op), threshold: spec.threshold),
            window: spec.eval_interval_seconds, forDuration: spec.for_seconds)
        let rows = lines.filter { !$0.hasPrefix("#") }.dropFirst()  // drop the `t,value` header
        let samples = try rows.map { row in
            let cells = row.split(separator: ",")
            return MetricSample(timestamp: try #require(Double(cells[0])), value: try #require(Double(cells[1])))
        }
        return (rule, samples)
    }

    static let expected: [(Double, AlertInstanceState, [AlertEvent])] = [
        (0, .pending(activeAt: 0), []),
        (30, .pending(activeAt: 0), []),
        (60, .inactive, []),                       // pending episode dropped silently
        (90, .pending(activeAt: 90), []),
        (120, .pending(activeAt: 90), []),
        (150, .pending(activeAt: 90), []),
        (180, .pending(activeAt: 90), []),
        (210, firing(90, 210), [.firing(startsAt: 210, value: 370)]),  // 210 − 90 = 120 ≥ 120
        (240, .resolved(activeAt: 90, firedAt: 210, resolvedAt: 240), [.resolved(startsAt: 210, endsAt: 240, value: 280)]),
        (270, .pending(activeAt: 270), []),
        (300, .inactive, []),
    ]

    @Test func statesAndExactlyTwoNotifications() throws {
        let (rule, samples) = try Self.load()
        #expect(samples.map(\.timestamp) == Self.expected.map(\.0))
        let steps = Self.expected.map { t, state, events in
            Step(t, rule.observation(of: samples, at: t), state, events)
        }
        let events = run(rule, steps)
        #expect(events == [.firing(startsAt: 210, value: 370), .resolved(startsAt: 210, endsAt: 240, value: 280)])
    }

    /// The state is persisted after every evaluation (as the app stores it) and read back before
    /// the next: a restart at any point neither resets `for` nor sends a second firing notification.
    @Test func survivesAPersistenceRoundTripAtEveryStep() throws {
        let (rule, samples) = try Self.load()
        var state = AlertInstanceState.inactive
        var events: [AlertEvent] = []
        for (t, expectedState, _) in Self.expected {
            let stored = try JSONEncoder().encode(state)
            let restored = try JSONDecoder().decode(AlertInstanceState.self, from: stored)
            let result = AlertStateMachine.evaluate(previous: restored, observation: rule.observation(of: samples, at: t),
                                                    rule: rule, now: t)
            #expect(result.state == expectedState, "t=\(t)")
            state = result.state
            events += result.events
        }
        #expect(events.count == 2)
    }

    @Test func replayGivesTheSameStates() throws {
        let (rule, samples) = try Self.load()
        let results = AlertStateMachine.replay(
            observations: samples.map { ($0.timestamp, rule.observation(of: samples, at: $0.timestamp)) }, rule: rule)
        #expect(results.map(\.state) == Self.expected.map(\.1))
        #expect(results.map(\.state.name) == ["pending", "pending", "inactive", "pending", "pending", "pending",
                                              "pending", "firing", "resolved", "pending", "inactive"])
    }
}

// MARK: State machine tables

@Suite("Alerting: state machine")
struct AlertStateMachineTests {
    @Test func forZeroFiresAtOnceAndResolves() throws {
        let rule = try threshold(.greaterThan, 100)
        run(rule, [
            Step(0, v(50), .inactive),
            Step(30, v(150), firing(30, 30), [.firing(startsAt: 30, value: 150)]),
            Step(60, v(150), firing(30, 30)),
            Step(90, v(100), .resolved(activeAt: 30, firedAt: 30, resolvedAt: 90), [.resolved(startsAt: 30, endsAt: 90, value: 100)]),
            Step(120, v(100), .inactive),
            Step(150, v(101), firing(150, 150), [.firing(startsAt: 150, value: 101)]),  // new episode, new startsAt
        ])
    }

    @Test func forBoundaryIsInclusive() throws {
        let rule = try threshold(.greaterThanOrEqual, 10, for: 60)
        run(rule, [
            Step(0, v(10), .pending(activeAt: 0)),
            Step(59.5, v(10), .pending(activeAt: 0)),
            Step(60, v(10), firing(0, 60), [.firing(startsAt: 60, value: 10)]),
        ])
    }

    @Test func keepFiringForHoldsUntilFalseLongEnough() throws {
        let rule = try threshold(.greaterThan, 100, keepFiringFor: 60)
        run(rule, [
            Step(0, v(150), firing(0, 0), [.firing(startsAt: 0, value: 150)]),
            Step(30, v(50), firing(0, 0, keepSince: 30)),
            Step(60, v(150), firing(0, 0)),                  // true again: countdown cleared
            Step(90, v(50), firing(0, 0, keepSince: 90)),
            Step(120, v(50), firing(0, 0, keepSince: 90)),   // 30 < 60
            Step(150, v(50), .resolved(activeAt: 0, firedAt: 0, resolvedAt: 150),  // 60 ≥ 60
                 [.resolved(startsAt: 0, endsAt: 150, value: 50)]),
        ])
    }

    @Test func keepFiringForDoesNotApplyToPending() throws {
        let rule = try threshold(.greaterThan, 100, for: 60, keepFiringFor: 300)
        run(rule, [
            Step(0, v(150), .pending(activeAt: 0)),
            Step(30, v(50), .inactive),
        ])
    }

    @Test func hysteresisAboveThreshold() throws {
        let rule = try threshold(.greaterThan, 90, resolve: 80)
        run(rule, [
            Step(0, v(85), .inactive),                     // hysteresis only applies once firing
            Step(30, v(95), firing(30, 30), [.firing(startsAt: 30, value: 95)]),
            Step(60, v(85), firing(30, 30)),               // below 90 but not below 80
            Step(90, v(80), firing(30, 30)),               // crossing is strict
            Step(120, v(79.9), .resolved(activeAt: 30, firedAt: 30, resolvedAt: 120),
                 [.resolved(startsAt: 30, endsAt: 120, value: 79.9)]),
            Step(150, v(85), .inactive),
        ])
    }

    @Test func hysteresisBelowThresholdWithKeepFiring() throws {
        let rule = try threshold(.lessThan, 10, keepFiringFor: 30, resolve: 20)
        run(rule, [
            Step(0, v(5), firing(0, 0), [.firing(startsAt: 0, value: 5)]),
            Step(30, v(15), firing(0, 0)),
            Step(60, v(25), firing(0, 0, keepSince: 60)),
            Step(90, v(15), firing(0, 0)),                 // back between the thresholds: still a problem
            Step(120, v(21), firing(0, 0, keepSince: 120)),
            Step(150, v(21), .resolved(activeAt: 0, firedAt: 0, resolvedAt: 150),
                 [.resolved(startsAt: 0, endsAt: 150, value: 21)]),
        ])
    }

    @Test func repeatIntervalSendsReminders() throws {
        let rule = try threshold(.greaterThan, 100, for: 30, repeatInterval: 60)
        let events = run(rule, [
            Step(0, v(150), .pending(activeAt: 0)),
            Step(30, v(150), firing(0, 30), [.firing(startsAt: 30, value: 150)]),
            Step(60, v(150), firing(0, 30)),
            Step(90, v(160), firing(0, 30, notified: 90), [.reminder(startsAt: 30, value: 160)]),  // 90 − 30 ≥ 60
            Step(120, v(150), firing(0, 30, notified: 90)),
            Step(150, v(170), firing(0, 30, notified: 150), [.reminder(startsAt: 30, value: 170)]),
            Step(180, v(50), .resolved(activeAt: 0, firedAt: 30, resolvedAt: 180),
                 [.resolved(startsAt: 30, endsAt: 180, value: 50)]),
        ])
        #expect(events.count == 4)
    }

    @Test func remindersContinueDuringKeepFiring() throws {
        let rule = try threshold(.greaterThan, 100, keepFiringFor: 120, repeatInterval: 60)
        run(rule, [
            Step(0, v(150), firing(0, 0), [.firing(startsAt: 0, value: 150)]),
            Step(30, v(50), firing(0, 0, keepSince: 30)),
            Step(60, v(50), firing(0, 0, notified: 60, keepSince: 30), [.reminder(startsAt: 0, value: 50)]),
        ])
    }

    /// A restart in the middle of firing: the decoded state sends no second firing notification.
    @Test func restartWhileFiringDoesNotRefire() throws {
        let rule = try threshold(.greaterThan, 100, for: 60)
        let stored = try JSONEncoder().encode(firing(0, 60))
        let restored = try JSONDecoder().decode(AlertInstanceState.self, from: stored)
        run(rule, [Step(90, v(150), firing(0, 60))], from: restored)
    }
}

// MARK: No data and absence

@Suite("Alerting: no-data policies and absence")
struct AlertNoDataTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let policy: AlertNoDataPolicy
        let previous: AlertInstanceState
        let state: AlertInstanceState
        let events: [AlertEvent]
        var testDescription: String { "\(policy.rawValue) from \(previous.name)" }
    }

    // Rule: > 100 for 60 s, keep_firing_for 30 s, repeat 60 s; evaluated with no data at t = 200.
    @Test(arguments: [
        Case(policy: .ok, previous: .inactive, state: .inactive, events: []),
        Case(policy: .ok, previous: .pending(activeAt: 180), state: .inactive, events: []),
        Case(policy: .ok, previous: firing(0, 60, notified: 180), state: firing(0, 60, notified: 180, keepSince: 200), events: []),
        Case(policy: .ok, previous: firing(0, 60, notified: 180, keepSince: 170), state: .resolved(activeAt: 0, firedAt: 60, resolvedAt: 200),
             events: [.resolved(startsAt: 60, endsAt: 200, value: nil)]),
        Case(policy: .alerting, previous: .inactive, state: .pending(activeAt: 200), events: []),
        Case(policy: .alerting, previous: .pending(activeAt: 140), state: firing(140, 200), events: [.firing(startsAt: 200, value: nil)]),
        Case(policy: .alerting, previous: firing(0, 60, notified: 180), state: firing(0, 60, notified: 180), events: []),
        Case(policy: .keepLast, previous: .inactive, state: .inactive, events: []),
        Case(policy: .keepLast, previous: .pending(activeAt: 0), state: .pending(activeAt: 0), events: []),
        Case(policy: .keepLast, previous: firing(0, 60, notified: 180), state: firing(0, 60, notified: 180), events: []),
        Case(policy: .keepLast, previous: firing(0, 60, notified: 140), state: firing(0, 60, notified: 200),
             events: [.reminder(startsAt: 60, value: nil)]),
        Case(policy: .keepLast, previous: firing(0, 60, notified: 180, keepSince: 190), state: firing(0, 60, notified: 180, keepSince: 190), events: []),
        Case(policy: .keepLast, previous: .resolved(activeAt: 0, firedAt: 60, resolvedAt: 170), state: .inactive, events: []),
    ])
    func noDataPolicy(_ c: Case) throws {
        let rule = try threshold(.greaterThan, 100, for: 60, keepFiringFor: 30, repeatInterval: 60, noData: c.policy)
        let result = AlertStateMachine.evaluate(previous: c.previous, observation: .noData, rule: rule, now: 200)
        #expect(result.state == c.state)
        #expect(result.events == c.events)
    }

    @Test func keepLastPendingFiresWhenDataReturns() throws {
        let rule = try threshold(.greaterThan, 100, for: 120, noData: .keepLast)
        run(rule, [
            Step(0, v(150), .pending(activeAt: 0)),
            Step(60, .noData, .pending(activeAt: 0)),
            Step(120, .noData, .pending(activeAt: 0)),
            Step(150, v(150), firing(0, 150), [.firing(startsAt: 150, value: 150)]),
        ])
    }

    @Test func absenceFiresWhenTheWholeWindowIsEmpty() throws {
        let rule = try AlertRuleParameters(condition: .absence, window: 60, forDuration: 60)
        let samples = [MetricSample(timestamp: 0, value: 1), MetricSample(timestamp: 30, value: 1),
                       MetricSample(timestamp: 160, value: 1)]
        let at = { (t: Double) in rule.observation(of: samples, at: t) }
        #expect(at(60) == .value(1))
        #expect(at(90) == .noData)   // (30, 90]: the sample at 30 is outside the left-open window
        run(rule, [
            Step(30, at(30), .inactive),
            Step(60, at(60), .inactive),
            Step(90, at(90), .pending(activeAt: 90)),
            Step(120, at(120), .pending(activeAt: 90)),
            Step(150, at(150), firing(90, 150), [.firing(startsAt: 150, value: nil)]),
            Step(180, at(180), .resolved(activeAt: 90, firedAt: 150, resolvedAt: 180),
                 [.resolved(startsAt: 150, endsAt: 180, value: 1)]),
        ])
    }

    @Test(arguments: AlertNoDataPolicy.allCases)
    func absenceIgnoresTheNoDataPolicy(_ policy: AlertNoDataPolicy) throws {
        let rule = try AlertRuleParameters(condition: .absence, window: 60, noData: policy)
        let result = AlertStateMachine.evaluate(previous: .inactive, observation: .noData, rule: rule, now: 10)
        #expect(result.state == firing(10, 10))
    }
}

// MARK: Rate rules

@Suite("Alerting: rate rules across counter resets")
struct AlertRateTests {
    private static func c15(_ series: String) throws -> [MetricSample] {
        let text = try Fixture.string("C15-counter-samples.csv")
        return try text.split(whereSeparator: \.isNewline)
            .filter { !$0.hasPrefix("#") && $0.hasPrefix(series + ",") }
            .map { line in
                let cells = line.split(separator: ",")
                return MetricSample(timestamp: try #require(Double(cells[1])), value: try #require(Double(cells[2])))
            }
    }

    struct Case: Sendable, CustomTestStringConvertible {
        let series: String
        let threshold: Double
        let now: Double
        let rate: Double?
        let fires: Bool
        var testDescription: String { "\(series) > \(threshold)" }
    }

    // Windows are long enough to hold each whole series (left-open, so window > span).
    @Test(arguments: [
        Case(series: "A", threshold: 0.02, now: 360, rate: 8.0 / 360, fires: true),    // signed sum 4/360 would not fire
        Case(series: "D", threshold: 0.3, now: 180, rate: 70.0 / 180, fires: true),     // signed −80/180 would not fire
        Case(series: "B", threshold: 0.004, now: 1800, rate: 7.0 / 1800, fires: false), // 0.0038889 < 0.004
        Case(series: "C", threshold: 0, now: 100, rate: nil, fires: false),             // one sample: no data
    ])
    func rateRule(_ c: Case) throws {
        let rule = try AlertRuleParameters(condition: .rate(op: .greaterThan, threshold: c.threshold), window: 3600)
        let observation = rule.observation(of: try Self.c15(c.series), at: c.now)
        #expect(observation == (c.rate.map(AlertObservation.value) ?? .noData))
        let result = AlertStateMachine.evaluate(previous: .inactive, observation: observation, rule: rule, now: c.now)
        #expect(result.state == (c.fires ? firing(c.now, c.now) : .inactive))
    }

    @Test func rateRuleWithNoDataAlertingPolicy() throws {
        let rule = try AlertRuleParameters(condition: .rate(op: .lessThan, threshold: 0.001), window: 3600, noData: .alerting)
        let observation = rule.observation(of: try Self.c15("C"), at: 100)
        #expect(observation == .noData)
        let result = AlertStateMachine.evaluate(previous: .inactive, observation: observation, rule: rule, now: 100)
        #expect(result.events == [.firing(startsAt: 100, value: nil)])
    }
}

// MARK: Operators, validation, persistence

@Suite("Alerting: operators, rule validation and Codable")
struct AlertRuleTests {
    @Test(arguments: [
        (">", AlertComparisonOperator.greaterThan), ("<", .lessThan), (">=", .greaterThanOrEqual),
        ("<=", .lessThanOrEqual), ("=", .equal), ("==", .equal), ("!=", .notEqual),
        (" >= ", .greaterThanOrEqual), ("GT", .greaterThan), ("lte", .lessThanOrEqual), ("ne", .notEqual),
    ])
    func parsesOperators(_ text: String, _ op: AlertComparisonOperator) throws {
        #expect(try AlertComparisonOperator(parsing: text) == op)
    }

    @Test(arguments: ["", "=>", "<>", "~", "greater"])
    func rejectsUnknownOperators(_ text: String) {
        #expect(throws: AlertRuleError.unknownOperator(text)) { try AlertComparisonOperator(parsing: text) }
    }

    @Test func comparesIncludingEqualityAndNaN() {
        let cases: [(AlertComparisonOperator, Double, Double, Bool)] = [
            (.greaterThan, 301, 300, true), (.greaterThan, 300, 300, false),
            (.greaterThanOrEqual, 300, 300, true), (.lessThan, 299, 300, true),
            (.lessThanOrEqual, 300, 300, true), (.equal, 0, 0, true), (.notEqual, 0, 0, false),
            (.greaterThan, .nan, 0, false), (.equal, .nan, .nan, false), (.notEqual, .nan, 0, true),
        ]
        for (op, value, threshold, expected) in cases {
            #expect(op.compare(value, threshold) == expected, "\(value) \(op.rawValue) \(threshold)")
        }
    }

    @Test func operatorCodableUsesCanonicalStrings() throws {
        #expect(String(decoding: try JSONEncoder().encode([AlertComparisonOperator.greaterThanOrEqual]), as: UTF8.self) == "[\">=\"]")
        #expect(try JSONDecoder().decode([AlertComparisonOperator].self, from: Data("[\"==\"]".utf8)) == [.equal])
        #expect(throws: AlertRuleError.unknownOperator("=>")) {
            try JSONDecoder().decode([AlertComparisonOperator].self, from: Data("[\"=>\"]".utf8))
        }
    }

    struct InvalidCase: Sendable, CustomTestStringConvertible {
        let name: String
        let make: @Sendable () throws -> AlertRuleParameters
        let error: AlertRuleError
        var testDescription: String { name }
    }

    @Test(arguments: [
        InvalidCase(name: "window 0", make: { try AlertRuleParameters(condition: .absence, window: 0) },
                    error: .invalidDuration(field: "window", seconds: 0)),
        InvalidCase(name: "negative for", make: { try threshold(.greaterThan, 1, for: -1) },
                    error: .invalidDuration(field: "for", seconds: -1)),
        InvalidCase(name: "negative keep_firing_for", make: { try threshold(.greaterThan, 1, keepFiringFor: -30) },
                    error: .invalidDuration(field: "keep_firing_for", seconds: -30)),
        InvalidCase(name: "repeat 0", make: { try threshold(.greaterThan, 1, repeatInterval: 0) },
                    error: .invalidDuration(field: "repeat_interval", seconds: 0)),
        InvalidCase(name: "infinite threshold", make: { try threshold(.greaterThan, .infinity) },
                    error: .invalidThreshold(field: "threshold", value: .infinity)),
        InvalidCase(name: "resolve above > threshold", make: { try threshold(.greaterThan, 90, resolve: 95) },
                    error: .invalidResolveThreshold(reason: "for > 90.0 it must be ≤ 90.0, got 95.0")),
        InvalidCase(name: "resolve below < threshold", make: { try threshold(.lessThan, 10, resolve: 5) },
                    error: .invalidResolveThreshold(reason: "for < 10.0 it must be ≥ 10.0, got 5.0")),
        InvalidCase(name: "resolve with =", make: { try threshold(.equal, 1, resolve: 1) },
                    error: .invalidResolveThreshold(reason: "= has no direction to cross")),
        InvalidCase(name: "resolve on absence", make: { try AlertRuleParameters(condition: .absence, window: 60, resolveThreshold: 1) },
                    error: .invalidResolveThreshold(reason: "an absence rule has no value to cross")),
    ])
    func rejectsInvalidParameters(_ c: InvalidCase) {
        #expect(throws: c.error) { try c.make() }
    }

    @Test func errorMessagesNameTheField() {
        #expect(AlertRuleError.invalidDuration(field: "for", seconds: -1).description
                == "for must be a finite number of seconds in range, got -1.0")
        #expect(AlertRuleError.unknownOperator("=>").description.contains("\"=>\""))
    }

    @Test func ruleRoundTripsAndDecodingValidates() throws {
        let rule = try AlertRuleParameters(
            condition: .threshold(aggregation: .p95, op: .greaterThan, threshold: 90), window: 300,
            forDuration: 120, keepFiringFor: 60, resolveThreshold: 80, repeatInterval: 3600, noData: .keepLast)
        let data = try JSONEncoder().encode(rule)
        #expect(try JSONDecoder().decode(AlertRuleParameters.self, from: data) == rule)

        let minimal = Data(#"{"condition":{"rate":{"op":">","threshold":0.5}},"window":300}"#.utf8)
        let decoded = try JSONDecoder().decode(AlertRuleParameters.self, from: minimal)
        #expect(decoded.forDuration == 0 && decoded.keepFiringFor == 0 && decoded.noData == .ok && decoded.repeatInterval == nil)

        let invalid = Data(#"{"condition":{"absence":{}},"window":-5}"#.utf8)
        #expect(throws: AlertRuleError.invalidDuration(field: "window", seconds: -5)) {
            try JSONDecoder().decode(AlertRuleParameters.self, from: invalid)
        }
    }

    /// The persisted shape is pinned: changing it needs a data migration.
    @Test func stateJSONShapeIsStable() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let cases: [(AlertInstanceState, String)] = [
            (.inactive, #"{"inactive":{}}"#),
            (.pending(activeAt: 90), #"{"pending":{"activeAt":90}}"#),
            (firing(90, 210), #"{"firing":{"activeAt":90,"firedAt":210,"lastNotifiedAt":210}}"#),
            (firing(90, 210, keepSince: 240), #"{"firing":{"activeAt":90,"firedAt":210,"keepFiringSince":240,"lastNotifiedAt":210}}"#),
            (.resolved(activeAt: 90, firedAt: 210, resolvedAt: 240), #"{"resolved":{"activeAt":90,"firedAt":210,"resolvedAt":240}}"#),
        ]
        for (state, json) in cases {
            #expect(String(decoding: try encoder.encode(state), as: UTF8.self) == json)
            #expect(try JSONDecoder().decode(AlertInstanceState.self, from: Data(json.utf8)) == state)
        }
    }

    @Test func eventsRoundTrip() throws {
        let events: [AlertEvent] = [.firing(startsAt: 210, value: 370), .reminder(startsAt: 210, value: nil),
                                    .resolved(startsAt: 210, endsAt: 240, value: 280)]
        #expect(try JSONDecoder().decode([AlertEvent].self, from: JSONEncoder().encode(events)) == events)
    }
}
