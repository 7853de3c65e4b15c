import CSQLite3

/// The SQLite library the reading buffer runs on.
public enum SQLiteLibrary {
    /// `sqlite3_libversion()`: the library actually loaded, not the header it was built with.
    public static var version: String { String(cString: sqlite3_libversion()) }

    /// `sqlite3_threadsafe()`: the buffer shares one connection pool across tasks, which needs
    /// serialized or multi-thread mode.
    public static var isThreadSafe: Bool { sqlite3_threadsafe() != 0 }
}
