import Agent
import CLISupport
import ArgumentParser
import Drivers
import Gateway

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print gatewayd's version and the versions of the C libraries it runs on.")

    func run() {
        print("gatewayd \(GatewaydVersion.string)")
        print("libmodbus \(DriverLibraries.modbusVersion)")
        print("libusb \(DriverLibraries.usbVersion)")
        print("sqlite \(SQLiteLibrary.version)\(SQLiteLibrary.isThreadSafe ? "" : " (not thread-safe!)")")
    }
}
