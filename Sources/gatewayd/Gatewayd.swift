import Agent
import CLISupport
import ArgumentParser

@main
struct Gatewayd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatewayd",
        abstract: "Edge agent for wired M-Bus, wireless M-Bus and Modbus meters in the plant room.",
        discussion: """
            Technicians' tools are subcommands. Start with `gatewayd decode` to read a telegram \
            captured from a meter.
            """,
        version: GatewaydVersion.string,
        subcommands: [Run.self, Status.self, Commission.self, Listen.self, Decode.self, ProfilesCommand.self, MBus.self, Modbus.self, Config.self, Devices.self, ReadingCommand.self, BufferCommand.self, RegistryCommand.self, BillingCommand.self, BundleCommand.self, ReplayCommand.self, Version.self]
    )
}
