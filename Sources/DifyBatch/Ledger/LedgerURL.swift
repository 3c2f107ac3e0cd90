import Foundation

/// Where a ledger lives, from `--db` or `$DIFY_BATCH_DB`: an SQLite file path, or a PostgreSQL URL
/// `postgres://USER@HOST[:PORT]/DB[?password_file=PATH&sslmode=disable|prefer|require]` (`postgresql://` too).
///
/// A password is never part of the URL (it would show in `ps`, logs and reports): it comes from
/// `password_file=`, else `$PGPASSWORD`, else `~/.pgpass` (or `$PGPASSFILE`), as libpq reads them.
public enum LedgerURL: Sendable, Equatable, CustomStringConvertible {
    case sqlite(path: String)
    case postgres(PostgresLocation)

    /// Parses `--db`/`$DIFY_BATCH_DB`. Anything not starting with `postgres://` or `postgresql://` is a file path.
    /// - Throws: ``LedgerError/Code/invalidValue`` for a PostgreSQL URL without a user, host or database, with an
    ///   inline password, or with an unknown query item.
    public static func parse(_ text: String) throws -> LedgerURL {
        let lowered = text.lowercased()
        guard lowered.hasPrefix("postgres://") || lowered.hasPrefix("postgresql://") else { return .sqlite(path: text) }
        return .postgres(try PostgresLocation(url: text))
    }

    /// `--db` if given, else `$DIFY_BATCH_DB`, else the default SQLite path (see ``LedgerLocation``).
    public static func resolve(_ option: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> LedgerURL {
        try parse(LedgerLocation.resolve(option, environment: environment))
    }

    /// The path, or the URL without any secret: safe for logs and reports.
    public var description: String {
        switch self {
        case .sqlite(let path): return path
        case .postgres(let location): return location.description
        }
    }
}

/// A PostgreSQL database named by a `postgres://` URL (see ``LedgerURL``).
public struct PostgresLocation: Sendable, Equatable, CustomStringConvertible {
    public enum TLSMode: String, Sendable, Equatable { case disable, prefer, require }

    public var user: String
    public var host: String
    /// Default 5432.
    public var port: Int
    public var database: String
    /// A file whose first line is the password (`password_file=`).
    public var passwordFile: String?
    /// `sslmode=` (default `prefer`: TLS when the server offers it).
    public var tls: TLSMode

    public init(user: String, host: String, port: Int = 5432, database: String, passwordFile: String? = nil, tls: TLSMode = .prefer) {
        self.user = user
        self.host = host
        self.port = port
        self.database = database
        self.passwordFile = passwordFile
        self.tls = tls
    }

    init(url text: String) throws {
        func invalid(_ why: String) -> LedgerError {
            LedgerError(.invalidValue, "--db: \(why); expected postgres://USER@HOST[:PORT]/DB (password from password_file=, PGPASSWORD or ~/.pgpass)")
        }
        guard let components = URLComponents(string: text) else { throw invalid("not a valid URL") }
        guard components.password == nil else {
            throw invalid("a password in the URL would show in process lists and logs; put it in a file and add ?password_file=PATH, or use PGPASSWORD or ~/.pgpass")
        }
        guard let user = components.user?.removingPercentEncoding, !user.isEmpty else { throw invalid("no user") }
        guard let host = components.host, !host.isEmpty else { throw invalid("no host") }
        let database = String(components.path.drop(while: { $0 == "/" })).removingPercentEncoding ?? ""
        guard !database.isEmpty, !database.contains("/") else { throw invalid("no database name after the host") }
        var passwordFile: String?
        var tls = TLSMode.prefer
        for item in components.queryItems ?? [] {
            switch item.name {
            case "password_file":
                guard let value = item.value, !value.isEmpty else { throw invalid("password_file= needs a path") }
                passwordFile = value
            case "sslmode":
                guard let value = item.value.flatMap(TLSMode.init(rawValue:)) else { throw invalid("sslmode must be disable, prefer or require") }
                tls = value
            default:
                throw invalid("unknown query item '\(item.name)' (known: password_file, sslmode)")
            }
        }
        self.init(user: user, host: host, port: components.port ?? 5432, database: database, passwordFile: passwordFile, tls: tls)
    }

    /// The URL without secrets (a password file's path is not a secret).
    public var description: String {
        var text = "postgres://\(user)@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)"
        var items: [String] = []
        if let passwordFile { items.append("password_file=\(passwordFile)") }
        if tls != .prefer { items.append("sslmode=\(tls.rawValue)") }
        if !items.isEmpty { text += "?" + items.joined(separator: "&") }
        return text
    }

    /// The password: the first line of `password_file`, else `$PGPASSWORD`, else the first matching line of
    /// `$PGPASSFILE` or `~/.pgpass` (`host:port:db:user:password`, `*` matches anything, `\:` and `\\` escape);
    /// nil when none applies (trust or peer authentication).
    /// - Throws: ``LedgerError/Code/cannotOpen`` when `password_file` cannot be read.
    public func password(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String? {
        if let passwordFile {
            guard let text = try? String(contentsOfFile: passwordFile, encoding: .utf8) else {
                throw LedgerError(.cannotOpen, "cannot read the PostgreSQL password file \(passwordFile) (password_file= in --db); check the path and its permissions")
            }
            return String(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "")
                .trimmingCharacters(in: CharacterSet(charactersIn: "\r"))
        }
        if let password = environment["PGPASSWORD"] { return password }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        let file = environment["PGPASSFILE"] ?? (home as NSString).appendingPathComponent(".pgpass")
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let fields = Self.pgpassFields(String(line))
            guard fields.count == 5 else { continue }
            let wanted = [host, String(port), database, user]
            if zip(fields.prefix(4), wanted).allSatisfy({ $0.0 == "*" || $0.0 == $0.1 }) { return fields[4] }
        }
        return nil
    }

    /// Splits a `.pgpass` line at unescaped colons, undoing `\:` and `\\`.
    static func pgpassFields(_ line: String) -> [String] {
        var fields: [String] = []
        var current = ""
        var escaped = false
        for character in line {
            if escaped {
                current.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == ":" && fields.count < 4 {
                fields.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        fields.append(current)
        return fields
    }
}
