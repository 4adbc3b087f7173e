<#
.SYNOPSIS
  Silent Deskpilot install for Intune / SCCM / Group Policy logon scripts (runs as the signed-in user).

.DESCRIPTION
  Installs the Deskpilot Python package (from a wheel next to this script, or from PyPI), then runs the
  unattended `deskpilot install --config deskpilot.toml`: local CA trusted in the user's Root store
  (certutil -user -addstore Root), Scheduled Task at logon, add-in manifests registered in the Office
  developer catalog (HKCU\Software\Microsoft\Office\16.0\WEF\Developer), health check.
  Exit code 0 = installed and healthy; anything else = failed (see the transcript and install.log).

.EXAMPLE
  powershell.exe -ExecutionPolicy Bypass -File install.ps1 -Config .\deskpilot.toml
  powershell.exe -ExecutionPolicy Bypass -File install.ps1 -Uninstall
#>
param(
    [string]$Config = (Join-Path $PSScriptRoot "deskpilot.toml"),
    [string]$Python = "py -3.11",
    [string]$Venv = (Join-Path $env:LOCALAPPDATA "Deskpilot\venv"),
    [switch]$Uninstall,
    [switch]$KeepData
)
$ErrorActionPreference = "Stop"
$logDir = Join-Path $env:LOCALAPPDATA "Deskpilot\logs"
New-Item -ItemType Directory -Force -Path $logDir | Out-Null
Start-Transcript -Path (Join-Path $logDir "install-ps1.log") -Append | Out-Null
try {
    $deskpilot = Join-Path $Venv "Scripts\deskpilot.exe"
    if ($Uninstall) {
        $uninstallArgs = @("uninstall")
        if ($KeepData) { $uninstallArgs += "--keep-data" }
        & $deskpilot @uninstallArgs
        exit $LASTEXITCODE
    }
    if (-not (Test-Path $deskpilot)) {
        Invoke-Expression "$Python -m venv `"$Venv`""
        if ($LASTEXITCODE -ne 0) { throw "could not create $Venv (is Python 3.11 installed?)" }
    }
    $wheel = Get-ChildItem -Path $PSScriptRoot -Filter "deskpilot-*.whl" -ErrorAction SilentlyContinue |
        Sort-Object Name | Select-Object -Last 1
    $pip = Join-Path $Venv "Scripts\python.exe"
    if ($wheel) { & $pip -m pip install --upgrade $wheel.FullName } else { & $pip -m pip install --upgrade deskpilot }
    if ($LASTEXITCODE -ne 0) { throw "pip install failed" }
    $installArgs = @("install")
    if (Test-Path $Config) { $installArgs += @("--config", $Config) }
    & $deskpilot @installArgs
    $code = $LASTEXITCODE
    & $deskpilot doctor
    exit $code
}
catch {
    Write-Error $_
    exit 1
}
finally {
    Stop-Transcript | Out-Null
}
