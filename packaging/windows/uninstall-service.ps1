# Removes the aiscout agent service, its binary and (with -Purge) its configuration and state.
# UNTESTED (see README.md).
#Requires -RunAsAdministrator
param(
    [string]$InstallDir = "$env:ProgramFiles\aiscout",
    [string]$DataDir = "$env:ProgramData\aiscout",
    [switch]$Purge
)
$ErrorActionPreference = "Stop"
$name = "aiscout-agent"
if (Get-Service -Name $name -ErrorAction SilentlyContinue) {
    Stop-Service -Name $name -Force
    sc.exe delete $name | Out-Null
}
Remove-Item -Recurse -Force -ErrorAction SilentlyContinue $InstallDir
if ($Purge) { Remove-Item -Recurse -Force -ErrorAction SilentlyContinue $DataDir }
