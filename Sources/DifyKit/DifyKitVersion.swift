public enum DifyKitVersion { public static let string = "0.1.0" }
