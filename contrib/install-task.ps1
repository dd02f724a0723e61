# Registers the lrci scheduled task for the current user and stores the settings as
# user environment variables. Run in PowerShell: .\install-task.ps1
$ErrorActionPreference = 'Stop'
$url = Read-Host 'LogRhythm API URL (e.g. https://platform-manager:8501)'
$lr  = Read-Host 'LogRhythm API key' -AsSecureString
$rf  = Read-Host 'Recorded Future token (Collective Insights permission)' -AsSecureString
function Plain($s) { [Runtime.InteropServices.Marshal]::PtrToStringAuto([Runtime.InteropServices.Marshal]::SecureStringToBSTR($s)) }
[Environment]::SetEnvironmentVariable('LOGRHYTHM_API_URL', $url, 'User')
[Environment]::SetEnvironmentVariable('LOGRHYTHM_API_KEY', (Plain $lr), 'User')
[Environment]::SetEnvironmentVariable('RF_API_KEY', (Plain $rf), 'User')
schtasks /Create /TN 'lrci sync' /XML (Join-Path $PSScriptRoot 'lrci-task.xml') /F
Write-Host 'Registered "lrci sync" (every 5 minutes).'
