import Foundation
import Synchronization

/// A ``PipelineObserver`` that keeps progress counts and, while ``run()`` runs, shows them on standard error.
///
/// On a terminal it redraws one status line (at most `liveInterval`, ~5 times a second); otherwise it writes a
/// plain `progress: ...` line every `plainInterval` and never an escape code. ``run()`` is meant to be a child
/// task of the launcher's task group, cancelled when the pipeline ends.
public final class ProgressReporter: PipelineObserver {
    /// How progress is shown.
    public enum Style: Sendable, Equatable {
        /// A redrawn status line (terminals only).
        case live
        /// A plain line now and then (pipes, files).
        case plain
        /// Counts are kept, nothing is shown.
        case silent
    }

    /// `--progress auto|always|never`.
    public enum Mode: String, Sendable, CaseIterable {
        case auto, always, never
    }

    public let style: Style
    /// Plain lines as JSON log records (`--log-format json`) instead of `progress: ...` text.
    public let plainJSON: Bool
    public let liveInterval: Duration
    public let plainInterval: Duration
    private let writer: StandardErrorWriter
    private let started = ContinuousClock.now
    private let state = Mutex(State())

    struct State {
        var lastState: [Int64: DocumentState] = [:]
        var counts: [DocumentState: Int] = [:]
        var finished = 0
        var tokens = 0
        var queues: [String: (inFlight: Int, waiting: Int)] = [:]
        var unsettled: [String: UnsettledFiles] = [:]
    }

    public init(style: Style, writer: StandardErrorWriter = .shared, liveInterval: Duration = .milliseconds(200),
                plainInterval: Duration = .seconds(10), plainJSON: Bool = false) {
        self.style = style
        self.plainJSON = plainJSON
        self.writer = writer
        self.liveInterval = liveInterval
        self.plainInterval = plainInterval
    }

    /// Chooses the style: a terminal gets the live line (unless `never`); a pipe or file gets plain lines when
    /// `plainWhenNotTerminal` (auto for `run`) or `always`, otherwise nothing. Never escape codes into a non-terminal.
    public static func style(mode: Mode, isTerminal: Bool, plainWhenNotTerminal: Bool) -> Style {
        switch mode {
        case .never: return .silent
        case .always: return isTerminal ? .live : .plain
        case .auto: return isTerminal ? .live : (plainWhenNotTerminal ? .plain : .silent)
        }
    }

    public func record(_ event: PipelineEvent) {
        state.withLock { state in
            switch event {
            case .documentSettled(_, let document):
                if let previous = state.lastState.updateValue(document.state, forKey: document.id) {
                    state.counts[previous, default: 0] -= 1
                    if previous.isTerminal { state.finished -= 1 }
                }
                state.counts[document.state, default: 0] += 1
                if document.state.isTerminal { state.finished += 1 }
            case .usageRecorded(_, let usage):
                state.tokens += usage.totalTokens ?? ((usage.promptTokens ?? 0) + (usage.completionTokens ?? 0))
            case .queue(let job, let inFlight, let waiting):
                state.queues[job] = (inFlight, waiting)
            case .unsettled(let job, let files):
                state.unsettled[job] = files
            case .jobAdmitted, .jobStarted, .jobFinished, .attemptFinished:
                break
            }
        }
    }

    /// The counts now.
    public func snapshot() -> ProgressSnapshot {
        let elapsed = (ContinuousClock.now - started).seconds
        return state.withLock { state in
            ProgressSnapshot(counts: state.counts.filter { $0.value != 0 },
                             inFlight: state.queues.values.reduce(0) { $0 + $1.inFlight },
                             waiting: state.queues.values.reduce(0) { $0 + $1.waiting },
                             finished: state.finished, tokens: state.tokens, elapsedSeconds: elapsed,
                             unsettled: UnsettledFiles.merged(state.unsettled.values))
        }
    }

    /// Shows progress until cancelled; then removes the live line (the caller prints its summary after).
    public func run() async {
        switch style {
        case .silent:
            return
        case .live:
            while !Task.isCancelled {
                writer.showStatus(ProgressRenderer.statusLine(snapshot(), columns: writer.terminalColumns))
                do { try await Task.sleep(for: liveInterval) } catch { break }
            }
            writer.clearStatus()
        case .plain:
            while !Task.isCancelled {
                do { try await Task.sleep(for: plainInterval) } catch { break }
                let now = snapshot()
                writer.writeLine(plainJSON ? ProgressRenderer.jsonLine(now, time: Date()) : ProgressRenderer.plainLine(now))
            }
        }
    }
}
