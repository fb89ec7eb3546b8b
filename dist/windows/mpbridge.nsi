; The Windows installer: a 64-bit NSIS installer, built on Linux by dist/build.sh with
; Debian's makensis:
;   makensis -DVERSION=0.1.0 -DSTAGE=<folder with mpbridge.exe, mpbridge.ico, LICENSES.txt,
;            README.md, relay.toml> -DOUTFILE=<…-setup.exe> dist/windows/mpbridge.nsi
;
; Installs for everyone (Program Files, needs administrator rights) or just for the current
; user (%LOCALAPPDATA%\Programs, no rights needed): the installer asks, or /AllUsers and
; /CurrentUser choose; /S is silent. It adds a Start-menu entry and an entry in Apps & features
; whose uninstaller removes everything it installed. The user's settings and data
; (%APPDATA%\mpbridge) are theirs and stay.

Unicode true
Target amd64-unicode
SetCompressor /SOLID lzma
ManifestDPIAware true

!ifndef VERSION
  !error "makensis -DVERSION=… is required"
!endif
!ifndef STAGE
  !error "makensis -DSTAGE=<folder> is required"
!endif
!ifndef OUTFILE
  !define OUTFILE "mpbridge-${VERSION}-windows-x86_64-setup.exe"
!endif

!define APP "mpbridge"
!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\mpbridge"

Name "${APP} ${VERSION}"
OutFile "${OUTFILE}"
BrandingText "${APP} ${VERSION}"
VIProductVersion "${VERSION}.0"
VIAddVersionKey /LANG=1033 "ProductName" "${APP}"
VIAddVersionKey /LANG=1033 "ProductVersion" "${VERSION}"
VIAddVersionKey /LANG=1033 "FileVersion" "${VERSION}"
VIAddVersionKey /LANG=1033 "FileDescription" "${APP} installer"
VIAddVersionKey /LANG=1033 "LegalCopyright" "The mpbridge authors, MIT OR Apache-2.0"

!define MULTIUSER_EXECUTIONLEVEL Highest
!define MULTIUSER_MUI
!define MULTIUSER_INSTALLMODE_COMMANDLINE
!define MULTIUSER_USE_PROGRAMFILES64
!define MULTIUSER_INSTALLMODE_INSTDIR "${APP}"
!define MULTIUSER_INSTALLMODE_INSTDIR_REGISTRY_KEY "${UNINSTALL_KEY}"
!define MULTIUSER_INSTALLMODE_INSTDIR_REGISTRY_VALUENAME "InstallLocation"
!define MULTIUSER_INSTALLMODE_DEFAULT_REGISTRY_KEY "${UNINSTALL_KEY}"
!define MULTIUSER_INSTALLMODE_DEFAULT_REGISTRY_VALUENAME "UninstallString"
!include MultiUser.nsh
!include MUI2.nsh
!include x64.nsh

!define MUI_ICON "${STAGE}\mpbridge.ico"
!define MUI_UNICON "${STAGE}\mpbridge.ico"
!define MUI_ABORTWARNING
!define MUI_FINISHPAGE_RUN "$INSTDIR\mpbridge.exe"

!insertmacro MUI_PAGE_WELCOME
!insertmacro MUI_PAGE_LICENSE "${STAGE}\LICENSES.txt"
!insertmacro MULTIUSER_PAGE_INSTALLMODE
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH

!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES

!insertmacro MUI_LANGUAGE "English"
!insertmacro MUI_LANGUAGE "SimpChinese"

Function .onInit
  ${IfNot} ${RunningX64}
    MessageBox MB_ICONSTOP "mpbridge needs 64-bit Windows. / mpbridge 需要 64 位 Windows。" /SD IDOK
    Abort
  ${EndIf}
  SetRegView 64
  !insertmacro MULTIUSER_INIT
FunctionEnd

Function un.onInit
  SetRegView 64
  !insertmacro MULTIUSER_UNINIT
FunctionEnd

Section "mpbridge" SecMain
  SectionIn RO
  SetOutPath "$INSTDIR"
  File "${STAGE}\mpbridge.exe"
  File "${STAGE}\mpbridge.ico"
  File "${STAGE}\LICENSES.txt"
  File "${STAGE}\README.md"
  SetOutPath "$INSTDIR\examples"
  File "${STAGE}\relay.toml"
  SetOutPath "$INSTDIR"

  WriteUninstaller "$INSTDIR\uninstall.exe"
  CreateShortcut "$SMPROGRAMS\mpbridge.lnk" "$INSTDIR\mpbridge.exe" "" "$INSTDIR\mpbridge.ico" 0

  ; Apps & features (SHCTX: HKLM for everyone, HKCU for the current user).
  WriteRegStr SHCTX "${UNINSTALL_KEY}" "DisplayName" "${APP}"
  WriteRegStr SHCTX "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr SHCTX "${UNINSTALL_KEY}" "Publisher" "The mpbridge authors"
  WriteRegStr SHCTX "${UNINSTALL_KEY}" "DisplayIcon" "$INSTDIR\mpbridge.ico"
  WriteRegStr SHCTX "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr SHCTX "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe" /$MultiUser.InstallMode'
  WriteRegStr SHCTX "${UNINSTALL_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /$MultiUser.InstallMode /S'
  WriteRegDWORD SHCTX "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD SHCTX "${UNINSTALL_KEY}" "NoRepair" 1
  SectionGetSize ${SecMain} $0
  WriteRegDWORD SHCTX "${UNINSTALL_KEY}" "EstimatedSize" $0
SectionEnd

Section "Uninstall"
  Delete "$SMPROGRAMS\mpbridge.lnk"
  Delete "$INSTDIR\mpbridge.exe"
  Delete "$INSTDIR\mpbridge.ico"
  Delete "$INSTDIR\LICENSES.txt"
  Delete "$INSTDIR\README.md"
  Delete "$INSTDIR\examples\relay.toml"
  RMDir "$INSTDIR\examples"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  DeleteRegKey SHCTX "${UNINSTALL_KEY}"
SectionEnd
