public enum DifySimulatorVersion { public static let string = "0.1.0" }
