# Installs the aiscout agent as a Windows service. UNTESTED: the agent does not build for
# Windows today (it reads /proc); see packaging/windows/README.md. Run in an elevated
# PowerShell:  powershell -ExecutionPolicy Bypass -File install-service.ps1
#Requires -RunAsAdministrator
param(
    [string]$InstallDir = "$env:ProgramFiles\aiscout",
    [string]$DataDir = "$env:ProgramData\aiscout",
    [string]$Binary = ".\aiscout-agent.exe"
)
$ErrorActionPreference = "Stop"
$name = "aiscout-agent"

New-Item -ItemType Directory -Force -Path $InstallDir, "$DataDir\state" | Out-Null
Copy-Item -Force $Binary "$InstallDir\aiscout-agent.exe"
if (-not (Test-Path "$DataDir\agent.toml")) {
    Copy-Item "$PSScriptRoot\..\agent.example.toml" "$DataDir\agent.toml"
    Write-Warning "edit $DataDir\agent.toml: collector.url, collector.ca_file, and state_dir = '$DataDir\state'"
}
# State and configuration: SYSTEM and Administrators only (the agent keeps its key there).
icacls "$DataDir" /inheritance:r /grant:r "SYSTEM:(OI)(CI)F" "Administrators:(OI)(CI)F" | Out-Null

# Refuse to start on an invalid configuration (ExecStartPre in the systemd unit).
& "$InstallDir\aiscout-agent.exe" validate --config "$DataDir\agent.toml"
if ($LASTEXITCODE -ne 0) { throw "invalid configuration: $DataDir\agent.toml" }

if (Get-Service -Name $name -ErrorAction SilentlyContinue) {
    Stop-Service -Name $name -Force
    sc.exe delete $name | Out-Null
    Start-Sleep -Seconds 2
}
New-Service -Name $name -DisplayName "aiscout agent" `
    -Description "Inventories the machine-learning models on this host and reports them to the aiscout collector." `
    -BinaryPathName "`"$InstallDir\aiscout-agent.exe`" run --config `"$DataDir\agent.toml`"" `
    -StartupType Automatic | Out-Null
# Delayed start; restart after 30 s on the first three failures (Restart=on-failure, RestartSec=30s).
sc.exe config $name start= delayed-auto | Out-Null
sc.exe failure $name reset= 600 actions= restart/30000/restart/30000/restart/30000 | Out-Null
sc.exe failureflag $name 1 | Out-Null
# Run as LocalSystem but with only the privileges an inventory needs.
sc.exe privs $name SeBackupPrivilege/SeChangeNotifyPrivilege/SeDebugPrivilege | Out-Null
Start-Service -Name $name
Get-Service -Name $name
