import EDMMonitor
import Foundation

// Entry point only: everything else lives in the EDMMonitor library (STYLE.md §1).
exit(await EDMMonitorCLI.main(arguments: Array(CommandLine.arguments.dropFirst())))
